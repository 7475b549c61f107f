"""Print a health report and the scaling advice as rich tables."""

from __future__ import annotations

from typing import Any

from liverl.health.advice import Advice
from liverl.health.findings import Report
from liverl.health.signals import fmt


def render_report(report: Report, console: Any = None) -> None:
    """Print the report as rich tables."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:  # pipes, cron mail, CI logs: do not squeeze the table to 80 columns
            console = Console(width=160)
    span = f"steps {report.first_step}-{report.last_step}" if report.steps else "no steps yet"
    console.print(f"[bold]{report.run}[/bold]: {report.steps} logged step(s), {span}")
    colors = {"CRIT": "bold red", "WARN": "yellow", "INFO": "cyan"}
    if report.findings:
        table = Table(show_lines=True)
        for col in ("severity", "finding", "first step", "current", "what is wrong", "fix"):
            table.add_column(col, overflow="fold")
        for f in report.findings:
            # the texts are plain: a fix such as `[console,file]` or `trainer.logger=[...]` is not rich markup
            table.add_row(f"[{colors[f.severity]}]{f.severity}[/]", escape(f"{f.id}\n({f.metric})"),
                          str(f.first_step), fmt(f.current), escape(f.message), escape(f.fix))
        console.print(table)
    else:
        console.print("[green]No findings.[/green]")
    if report.skipped:
        console.print("Checks that could not run: " + "; ".join(
            f"{s.check} ({s.reason}: {', '.join(s.needs)})" if s.needs else f"{s.check} ({s.reason})"
            for s in report.skipped))
    for note in report.notes:
        console.print(f"note: {note}")
    verdict = {0: "[green]healthy[/green]", 1: "[yellow]warnings[/yellow]", 2: "[bold red]critical[/bold red]"}
    console.print(f"verdict: {verdict[report.exit_code]} (exit {report.exit_code})")


def render_advice(advice: list[Advice], run_dir: str) -> None:
    """Print the table and the launch lines."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    colors = {"scale": "bold yellow", "stay": "green", "already": "cyan", "cannot judge": "dim",
              "did not fit": "bold red", "fix first": "bold yellow"}
    table = Table(title=f"When to scale: {run_dir}", show_lines=True)
    for col in ("signal", "lever", "verdict", "this run", "overrides"):
        table.add_column(col, overflow="fold")
    for a in advice:
        table.add_row(escape(a.signal), escape(a.lever), f"[{colors[a.verdict]}]{a.verdict}[/]", escape(a.evidence),
                      escape(" ".join(a.overrides)))
    console.print(table)
    acting = [a for a in advice if a.verdict in ACT]
    if not acting:
        console.print("Stay on the current path: no signal on this run calls for scaling (the multi-node path "
                      "costs more machines and more operational care).")
    for a in advice:  # every command printed runs as printed (tests/test_advise_commands.py dry-runs each)
        if not a.command:
            continue
        head = a.lever if a.verdict in ACT else f"If you choose to ({a.lever})"
        # commands are printed as text, not rich markup: `verl.trainer.logger=[console,file]` keeps its brackets
        console.print(f"{head}:", highlight=False, soft_wrap=True, markup=False)
        if a.smoke_command:
            console.print(f"  # no smoke pass recorded for its scaffold x topology x engine: smoke first\n"
                          f"  {a.smoke_command}\n  # then", highlight=False, soft_wrap=True, markup=False)
        console.print(f"  {a.command}", highlight=False, soft_wrap=True, markup=False)


# verdicts that ask the user to act (their command is printed as the thing to do, not as an option)
ACT = ("scale", "did not fit", "fix first")
