"""``handle.ui_url`` is the workflow's own page in Temporal's Web UI, whatever its saga is
named (attack41 F11): the run id and the namespace are each one percent-encoded path segment.
Unencoded, ``booking #42`` linked to ``.../booking`` with a fragment, ``trip?x=1`` to a query,
``a/b`` to another path. Built from the runner's UI address alone: no server here."""

from types import SimpleNamespace
from urllib.parse import quote, unquote, urlsplit

import pytest

from rollback_lessons import Saga, Step
from rollback_lessons.runners.temporal import SagaHandle

BASE = "http://127.0.0.1:8233"


def _handle(run_id: str, namespace: str = "default", ui: str | None = BASE) -> SagaHandle:
    runner = SimpleNamespace(ui_url=ui, client=SimpleNamespace(namespace=namespace))
    saga = Saga([Step("a", lambda s: None, lambda s: None)])
    return SagaHandle(runner, saga, SimpleNamespace(id=run_id), None, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "run_id",
    ["booking #42-0a1b", "trip?x=1-0a1b", "a/b-0a1b", "100% sure-0a1b", "café ✈ 予約-0a1b",
     "../../settings-0a1b", "plain-0a1b"],
)  # fmt: skip
@pytest.mark.parametrize("namespace", ["default", "team/a #1"])
def test_the_ui_url_is_the_workflows_own_page(run_id, namespace):
    url = _handle(run_id, namespace).ui_url
    assert url is not None and url.startswith(f"{BASE}/namespaces/")
    parts = urlsplit(url)
    assert (parts.query, parts.fragment) == ("", "")
    assert parts.path.endswith(f"/workflows/{quote(run_id, safe='')}")
    segments = parts.path.split("/")
    assert [unquote(s) for s in segments] == ["", "namespaces", namespace, "workflows", run_id]


def test_no_ui_no_url():
    assert _handle("a-0a1b", ui=None).ui_url is None
