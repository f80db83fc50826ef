#!/usr/bin/env python3
"""Runs a command (an mpirun job) that must fail cleanly: exit non-zero,
not hang, within --max-seconds. Optionally requires or forbids lines in its
output. Used by the dead-peer tests, whose success is the job's failure."""
import argparse
import os
import signal
import subprocess
import sys
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-seconds", type=float, required=True)
    parser.add_argument("--kill-after", type=float, default=20.0,
                        help="kill the job if it is still running then (a hang)")
    parser.add_argument("--require", action="append", default=[], help="text the output must contain")
    parser.add_argument("--forbid", action="append", default=[], help="text the output must not contain")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command

    start = time.monotonic()
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)
    try:
        output, _ = job.communicate(timeout=args.kill_after)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        output, _ = job.communicate()
        print(output)
        print(f"FAIL: still running after {args.kill_after:.0f} s: the job hung")
        return 1
    elapsed = time.monotonic() - start
    print(output)

    problems = []
    if job.returncode == 0:
        problems.append("the job exited 0; a dead peer must make it fail")
    if elapsed > args.max_seconds:
        problems.append(f"the job took {elapsed:.1f} s, more than {args.max_seconds:.0f} s")
    problems += [f"output lacks '{text}'" for text in args.require if text not in output]
    problems += [f"output has '{text}'" for text in args.forbid if text in output]
    for problem in problems:
        print("FAIL: " + problem)
    if not problems:
        print(f"OK: exit code {job.returncode} after {elapsed:.1f} s")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
