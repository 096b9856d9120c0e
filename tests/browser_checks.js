// What the browser tests measure inside the page (one place, read by test_browser.py).
// Each function is evaluated by Playwright with an argument; all sizes in CSS pixels.
({
  // The notebook's scrolling area: what a learner sees of the lesson at once.
  area: () => {
    const outer = document.querySelector(".jp-NotebookPanel .jp-WindowedPanel-outer");
    const b = outer.getBoundingClientRect();
    return { top: b.top, bottom: b.bottom, left: b.left, right: b.right, height: b.height };
  },

  // Scroll so that element ``i`` matching ``sel`` starts at the top of the notebook's area
  // (JupyterLab's default windowing estimates heights: repeat until it stays).
  scrollTo: async ([sel, i]) => {
    const el = document.querySelectorAll(sel)[i];
    const outer = el.closest(".jp-WindowedPanel-outer");
    for (let n = 0; n < 12; n++) {
      const off = el.getBoundingClientRect().top - outer.getBoundingClientRect().top - 4;
      if (Math.abs(off) < 2) break;
      const before = outer.scrollTop;
      outer.scrollTop += off;
      if (off > 0 && outer.scrollTop === before) {
        // stuck short of it: the windowed notebook's height is an estimate that a cell
        // grown since has outrun (a fresh-clone CI, lesson 11, s43): let Lumino measure
        // again (a resize), from a little higher up
        window.dispatchEvent(new Event("resize"));
        outer.scrollTop = Math.max(0, before - 200);
        // and, as the resize alone once did not (lesson 11 stuck 103 px low at load 6-28,
        // s45), Lumino's own scroll to the cell, which JupyterLab's "go to cell" uses: it
        // measures the cells it passes and scrolls again until the cell is where it asked
        const nb = window.jupyterapp?.shell?.currentWidget?.content;
        const cell = el.closest(".jp-Cell");
        const at = nb?.widgets && cell ? nb.widgets.findIndex((w) => w.node === cell) : -1;
        if (at >= 0 && nb.scrollToItem) {
          const settled = nb.scrollToItem(at, "start").catch(() => null);
          await Promise.race([settled, new Promise((r) => setTimeout(r, 2000))]);
        }
      }
      await new Promise((r) => setTimeout(r, 120));
    }
    return el.getBoundingClientRect().top - outer.getBoundingClientRect().top;
  },

  box: ([sel, i]) => {
    const b = document.querySelectorAll(sel)[i].getBoundingClientRect();
    return { top: b.top, bottom: b.bottom, left: b.left, right: b.right, height: b.height };
  },

  // The report a picture carries in its PNG (a tEXt chunk "rollback-lessons"), or null.
  pictures: async ([sel, i]) => {
    // an image replaced while it was read (a view drawn again: lesson 11's grid) is read
    // again from the view as it now stands, never measured detached (a 0x0 box at 0)
    const once = async () => {
      const root = document.querySelectorAll(sel)[i];
      const out = [];
      for (const img of root.querySelectorAll("img")) {
        if (!img.getClientRects().length) continue;
        await img.decode().catch(() => null);
        const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
        let report = null;
        const png = bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47;
        for (let at = 8; png && at + 8 <= bytes.length; ) {
          const len = (bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3];
          const tag = String.fromCharCode(...bytes.slice(at + 4, at + 8));
          if (tag === "tEXt") {
            const body = new TextDecoder("latin1").decode(bytes.slice(at + 8, at + 8 + len));
            if (body.startsWith("rollback-lessons\0")) report = JSON.parse(body.slice(17));
          }
          if (tag === "IDAT") break;
          at += 12 + len;
        }
        if (!img.isConnected) return null;
        const b = img.getBoundingClientRect();
        out.push({
          kind: png ? "png" : "other", report, natural: img.naturalWidth, shown: b.width,
          top: b.top, bottom: b.bottom, left: b.left, right: b.right,
        });
      }
      return out;
    };
    for (let tries = 0; ; tries++) {
      const got = await once();
      if (got !== null || tries >= 50) return got || [];
      await new Promise((r) => requestAnimationFrame(r));
    }
  },

  // Every piece of text a learner can see in the element: its font size, and whether
  // two of them (or a text and a control) overlap, and whether one is cut by its box.
  texts: ([sel, i]) => {
    const root = document.querySelectorAll(sel)[i];
    const visible = (el) => {
      for (let e = el; e && e !== document.body; e = e.parentElement) {
        const s = getComputedStyle(e);
        if (s.display === "none" || s.visibility === "hidden" || s.opacity === "0") return false;
      }
      return el.getClientRects().length > 0;
    };
    const clipOf = (el, top) => {
      let c = { left: -Infinity, right: Infinity, top: -Infinity, bottom: Infinity };
      for (let e = el; e && e !== top.parentElement; e = e.parentElement) {
        if (getComputedStyle(e).overflow !== "visible") {
          const b = e.getBoundingClientRect();
          c = { left: Math.max(c.left, b.left), right: Math.min(c.right, b.right),
                top: Math.max(c.top, b.top), bottom: Math.min(c.bottom, b.bottom) };
        }
      }
      return c;
    };
    const small = [], boxes = [], cut = [];
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const text = node.textContent.trim();
      const el = node.parentElement;
      if (!text || !visible(el) || el.closest("style")) continue;
      const px = parseFloat(getComputedStyle(el).fontSize);
      if (px < 12) small.push({ text: text.slice(0, 40), px });
      const range = document.createRange();
      range.selectNodeContents(node);
      const clip = clipOf(el, root);
      for (const whole of range.getClientRects()) {
        const r = {  // what is drawn: clipped by an ancestor that hides its overflow
          left: Math.max(whole.left, clip.left), right: Math.min(whole.right, clip.right),
          top: Math.max(whole.top, clip.top), bottom: Math.min(whole.bottom, clip.bottom),
        };
        if (r.right > r.left && r.bottom > r.top) boxes.push({ el, text: text.slice(0, 30), r });
      }
      const titled = el.closest("[title]");
      if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflow !== "visible"
          && !titled) {
        cut.push(text.slice(0, 40));
      }
    }
    for (const el of root.querySelectorAll("img, select, button, input, .noUi-target")) {
      if (visible(el)) boxes.push({ el, text: `<${el.tagName.toLowerCase()}>`, r: el.getBoundingClientRect() });
    }
    const overlaps = [];
    for (let a = 0; a < boxes.length; a++) {
      for (let b = a + 1; b < boxes.length; b++) {
        const p = boxes[a], q = boxes[b];
        if (p.el === q.el || p.el.contains(q.el) || q.el.contains(p.el)) continue;
        const w = Math.min(p.r.right, q.r.right) - Math.max(p.r.left, q.r.left);
        const h = Math.min(p.r.bottom, q.r.bottom) - Math.max(p.r.top, q.r.top);
        if (w > 1 && h > 1) overlaps.push(`${p.text} / ${q.text}`);
      }
    }
    return { small, overlaps, cut, count: boxes.length };
  },

  // The event log's cells and their parts that do not show their whole text (the log
  // shown, not its hidden reserves). A row other than the current one is two lines at most:
  // longer, it may end in "…" only with the whole row in its title; every other cut counts,
  // on the current row any cut at all (newuser12: lesson 04's halt reason, cut there).
  logCut: ([sel, i]) => {
    const root = document.querySelectorAll(sel)[i];
    const bare = (text) => (text || "").replace(/\s/g, "");
    return [...root.querySelectorAll(".rl-log td, .rl-log td span, .rl-log .rl-line")]
      .filter((el) => !el.closest(".rl-reserve"))
      .filter((el) => el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1)
      .filter((el) => {
        const line = el.closest(".rl-line");
        return el.closest("tr.now") || !(line && el === line && bare(line.title) === bare(line.textContent));
      })
      .map((el) => el.textContent.slice(0, 60));
  },

  // The cue, clamped to two lines, cuts nothing: it shows only whole parts that fit
  // (panel_controls.Said.cue; newuser20: "never struck: write_file undo fails…" of "undo
  // fails once"). Its text if its box hides any of it, else null.
  cueCut: ([sel, i]) => {
    const cue = document.querySelectorAll(sel)[i].querySelector(".rl-side .rl-cue");
    return cue && cue.scrollHeight > cue.clientHeight + 1 ? cue.textContent : null;
  },

  // What the learner reads whole, never cut nor clamped: the event log's current row and
  // the result's head. [text, why] for each that is not.
  wholeNow: ([sel, i]) => {
    const root = document.querySelectorAll(sel)[i];
    const shown = [...root.querySelectorAll(".rl-log tr.now .rl-line, .rl-log tr.now td, .rl-result .rl-head")]
      .filter((el) => !el.closest(".rl-reserve"));
    const out = [];
    for (const el of shown) {
      const s = getComputedStyle(el);
      if (el.scrollHeight > el.clientHeight + 1) out.push([el.textContent.slice(0, 60), "taller than its box"]);
      if (el.scrollWidth > el.clientWidth + 1) out.push([el.textContent.slice(0, 60), "wider than its box"]);
      if (s.textOverflow === "ellipsis" && s.overflow !== "visible") out.push([el.textContent.slice(0, 60), "ellipsis"]);
      const clamp = s.webkitLineClamp || s.getPropertyValue("-webkit-line-clamp");
      if (clamp && clamp !== "none") out.push([el.textContent.slice(0, 60), `clamped at ${clamp}`]);
    }
    return out;
  },

  // From now on, how many times each of ``sels`` (an HTML widget) has its content replaced,
  // and how many pictures come with them: one widget message, one replacement.
  countUpdates: ([sels]) => {
    const contents = sels.map((sel) => document.querySelector(`${sel} .widget-html-content`));
    const seen = (window.__updates = { views: sels.map(() => 0), pictures: 0 });
    window.__updatesObserver?.disconnect();
    window.__updatesObserver = new MutationObserver((records) => {
      for (const r of records) {
        const k = contents.indexOf(r.target);
        if (k < 0 || !r.addedNodes.length) continue;
        seen.views[k]++;
        if (k === 0) seen.pictures += [...r.addedNodes].filter((n) => n.nodeType === 1
          && (n.matches("img") || n.querySelector("img"))).length;
      }
    });
    for (const c of contents) window.__updatesObserver.observe(c, { childList: true });
    return contents.map((c) => !!c);
  },
  updates: () => window.__updates,

  // From now on, every (caption, slider readout) panel ``i`` shows, in order (newuser11:
  // after a change the slider took the old run's length and a mid-run frame was painted).
  recordFrames: ([sel, i]) => {
    const root = document.querySelectorAll(sel)[i];
    const seen = (window.__frames = []);
    const note = () => {
      const shown = [root.querySelector(".rl-caption")?.textContent,
        root.querySelector(".rl-frame .widget-readout")?.textContent];
      const last = seen[seen.length - 1];
      if (!last || last[0] !== shown[0] || last[1] !== shown[1]) seen.push(shown);
    };
    window.__framesObserver?.disconnect();
    window.__framesObserver = new MutationObserver(note);
    window.__framesObserver.observe(root, { subtree: true, childList: true, characterData: true });
    note();
    return null;
  },
  recorded: () => window.__frames,

  // The event log's body rows' heights, rounded, but the current one's (whole, however
  // long): one height (two lines) whatever they say. The log shown, not its reserves.
  logRows: ([sel, i]) => {
    const root = document.querySelectorAll(sel)[i];
    return [...root.querySelectorAll(".rl-log tbody tr:not(.now)")]
      .filter((tr) => !tr.closest(".rl-reserve"))
      .map((tr) => Math.round(tr.getBoundingClientRect().height));
  },

  // A fault change, picked as a click does (what Playwright's select_option does too):
  // option ``index`` of the ``k``-th ``select`` of panel ``panel``, to its
  // new picture painted, in ms: from the change event to the new image decoded and the frame
  // holding it painted. null: the change made a run with the same picture (its view came,
  // the picture did not change: a fault on a step the run never reaches).
  clickToPaint: async ([panel, select, index, k = 0]) => {
    const root = document.querySelectorAll(".rollback-lab")[panel];
    const box = root.querySelectorAll(select)[k];
    const view = root.querySelector(".rl-view");
    const old = view.querySelector("img.rl-image")?.getAttribute("src");
    const cue = view.querySelector(".rl-cue")?.textContent;
    const t0 = performance.now();
    const changed = new Promise((resolve) => {
      const check = () => {
        const img = view.querySelector("img.rl-image");
        if (img && img.getAttribute("src") !== old) { obs.disconnect(); resolve(img); }
        else if (view.querySelector(".rl-cue")?.textContent !== cue) { obs.disconnect(); resolve(null); }
      };
      const obs = new MutationObserver(check);
      obs.observe(view, { childList: true, subtree: true, attributes: true });
    });
    box.selectedIndex = index;
    box.dispatchEvent(new Event("change", { bubbles: true }));
    const said = () => {  // what the panel shows, for the error (which option, which run)
      const src = view.querySelector("img.rl-image")?.getAttribute("src") || "";
      return `option ${box.selectedIndex} of ${box.options.length} (asked ${index}), ` +
        `picture ${src === old ? "unchanged" : "changed"}, cue ` +
        JSON.stringify(root.querySelector(".rl-cue")?.textContent || "");
    };
    const late = new Promise((_, no) => setTimeout(() => no(new Error(`no new picture in 60 s: ${said()}`)), 60000));
    const img = await Promise.race([changed, late]);
    if (img === null) return null;
    await img.decode();
    // the frame with the new picture: rAF runs just before it is painted, a task queued
    // there runs once it has been
    await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
    return performance.now() - t0;
  },

  // Every option of every enabled fault control of panel ``panel``, each chosen and then set
  // back, as a learner tries them: [select, k, option] for clickToPaint.
  faultChanges: ([panel]) => {
    const root = document.querySelectorAll(".rollback-lab")[panel];
    const out = [];
    for (const select of [".rl-action select", ".rl-undo select"]) {
      root.querySelectorAll(select).forEach((box, k) => {
        if (box.disabled) return;
        const now = box.selectedIndex;
        for (let i = 0; i < box.options.length; i++) if (i !== now) out.push([select, k, i], [select, k, now]);
      });
    }
    return out;
  },
  // A learner's action on panel ``i`` of ``sel``, in two halves around it: ``watch`` before
  // (from now on, note every change in the panel), ``settled`` after: once its view changed
  // (``changed`` false: no need) and nothing in the panel changed for ``quiet`` ms, the
  // panel's bounding height (null: the view did not change in 20 s).
  watch: ([sel, i]) => {
    const root = document.querySelectorAll(sel)[i];
    const view = root.querySelector(".rl-view, .il-view");
    const seen = (window.__watch = { view: false, last: performance.now() });
    window.__watchObserver?.disconnect();
    window.__watchObserver = new MutationObserver((records) => {
      seen.last = performance.now();
      if (records.some((r) => view.contains(r.target))) seen.view = true;
    });
    window.__watchObserver.observe(root, { subtree: true, childList: true, attributes: true, characterData: true });
    return !!view;
  },
  settled: async ([sel, i, changed = true, quiet = 200]) => {
    const seen = window.__watch, t0 = performance.now();
    const wait = () => new Promise((r) => setTimeout(r, 25));
    while (changed && !seen.view) { if (performance.now() - t0 > 20000) return null; await wait(); }
    while (performance.now() - seen.last < quiet && performance.now() - t0 < 20000) await wait();
    await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
    return document.querySelectorAll(sel)[i].getBoundingClientRect().height;
  },

  // The parts of panel ``i`` of ``sel`` whose fixed height hides some of what they hold
  // (they scroll: nothing is cut, but a learner must scroll to read it): [class, px more].
  // Sideways too, the panel's own box with them (newuser18: lesson 06's state value
  // "['row-1:reverted']" widened its table 19 px past the side column, which cut its "]",
  // and the panel's widget box scrolled 17 px).
  overflowing: ([sel, i]) => {
    const root = document.querySelectorAll(sel)[i];
    const parts = new Set(root.querySelectorAll(".rl-side, .rl-state, .rl-log, .rl-box"));
    const scrolls = (el) => ["auto", "scroll"].includes(getComputedStyle(el).overflowX);
    return [root, ...root.querySelectorAll("*")].flatMap((el) => [
      ...(parts.has(el) && el.scrollHeight > el.clientHeight + 1
        ? [[el.className, el.scrollHeight - el.clientHeight]] : []),
      ...((parts.has(el) || scrolls(el)) && el.scrollWidth > el.clientWidth + 1
        ? [[`${el.className} sideways`, el.scrollWidth - el.clientWidth]] : []),
    ]);
  },

  // Every option but the chosen one of every enabled dropdown of panel ``i`` of ``sel``:
  // [k, option value] (k: the dropdown's index among the panel's selects).
  choices: ([sel, i]) => {
    const out = [];
    document.querySelectorAll(sel)[i].querySelectorAll("select").forEach((box, k) => {
      if (box.disabled) return;
      for (const o of box.options) if (o.value !== box.value) out.push([k, o.value]);
    });
    return out;
  },
})
