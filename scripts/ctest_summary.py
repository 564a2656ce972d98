#!/usr/bin/env python3
"""Counts what ctest ran and lists every test that did not run, with its reason.

Usage: ctest_summary.py JUNIT.xml LABEL   (JUNIT.xml: `ctest --output-junit`)
A skip is a GoogleTest GTEST_SKIP (its message) or a test that exited with its SKIP_RETURN_CODE
(its last line of output).
"""
import sys
import xml.etree.ElementTree as ET


def skip_reason(output):
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.endswith(": Skipped"):  # GTEST_SKIP: file:line: Skipped, then the message
            message = []
            for follow in lines[i + 1:]:
                if follow.startswith("[  SKIPPED ]"):
                    break
                message.append(follow)
            return " ".join(message) or "(no message)"
    return lines[-1] if lines else "(no output)"


def main():
    path, label = sys.argv[1], sys.argv[2]
    cases = ET.parse(path).getroot().iter("testcase")
    ran, failed, skipped = 0, 0, []
    for case in cases:
        status = case.get("status")
        if status == "notrun" or case.find("skipped") is not None:
            skipped.append((case.get("name"), skip_reason(case.findtext("system-out") or "")))
        elif status == "fail" or case.find("failure") is not None:
            failed += 1
        else:
            ran += 1
    print(f"tq tests [{label}]: {ran} passed, {failed} failed, {len(skipped)} skipped")
    for name, reason in skipped:
        print(f"  skipped {name}: {reason}")


if __name__ == "__main__":
    main()
