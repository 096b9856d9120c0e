"""Build hook: the lessons (notebooks/, where they live in the repository) ship inside the
wheel as rollback_lessons/lessons/, so `rollback-lessons lab` can copy them for a learner.
An editable install reads notebooks/ from the checkout instead."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithLessons(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "rollback_lessons" / "lessons"
        target.mkdir(parents=True, exist_ok=True)
        for lesson in sorted(Path("notebooks").glob("[0-9][0-9]_*.ipynb")):
            self.copy_file(str(lesson), str(target / lesson.name))


setup(
    cmdclass={"build_py": BuildWithLessons},
    # no "Get Jupyter news?" pop-up over a lesson (namespaced: other overrides stay)
    data_files=[
        ("share/jupyter/lab/settings/overrides.d", ["jupyter-config/rollback-lessons.json"])
    ],
)
