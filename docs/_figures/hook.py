"""mkdocs hook: the figures of figures.py, drawn at every build and served as figures/*.svg.

Nothing is written into docs/: each SVG is a generated file of the build, so a page refers
to ``figures/sticky-ring.svg`` as to any file of the docs, and the picture is always the
one the library's current code gives. Listed under ``hooks`` in mkdocs.yml.
"""

from __future__ import annotations

from figures import draw_all  # mkdocs puts this directory on sys.path while loading the hook
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

FIGURES_DIR = "figures"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for name, svg in draw_all().items():
        files.append(File.generated(config, f"{FIGURES_DIR}/{name}", content=svg))
    return files
