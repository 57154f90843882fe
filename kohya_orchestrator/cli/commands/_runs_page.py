"""`runs page RUN` and `runs open RUN`: (re)write a run's index.html and open it in a browser."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["PAGE_EXAMPLES", "open_page", "write_page"]

PAGE_EXAMPLES = (
    "  python -m kohya_orchestrator runs open latest     # the run page in a browser\n"
    "  python -m kohya_orchestrator runs page latest     # rewrite it from events.jsonl\n"
)


def write_page(rd: object) -> int:
    """Rewrite the run page from events.jsonl; print its path."""
    from ...ui.messages import console

    console().print(f"[green]✓[/green] wrote {_write(rd)}", soft_wrap=True, highlight=False)
    return 0


def open_page(rd: object) -> int:
    """Open the run page in the default browser (writing it first if missing); print its path."""
    import webbrowser

    from ...launch.rundir import RunDir
    from ...outputs.pagesink import PAGE_NAME
    from ...ui.messages import console

    assert isinstance(rd, RunDir)
    page = rd.path / PAGE_NAME
    if not page.is_file():
        page = _write(rd)
    page = page.resolve()
    console().print(str(page), soft_wrap=True, highlight=False)
    if not webbrowser.open(page.as_uri()):
        console().print("[dim]no browser found here: open the file above in one[/dim]")
    return 0


def _write(rd: object) -> Path:
    from ...launch.rundir import RunDir
    from ...outputs.pagesink import write_run_page

    assert isinstance(rd, RunDir)
    live = rd.read_status() in ("pending", "starting", "running")
    return write_run_page(rd.path, live=live)
