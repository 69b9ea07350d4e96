#!/usr/bin/env python3
"""Resident memory of the TUI after a query and a reindex, for one or more binaries.

Each binary gets its own copy of a catalog (default: the 70-image fixture of
crates/lookalike/tests/fixtures/v1) in a private tmux server: the TUI opens in the
catalog's image folder, a photo is queried (the model loads), one new photo is added and
`r` reindexes it (the TUI then searches again). VmRSS and VmHWM of the TUI process are
read from /proc when the new results are on screen.

    python3 bench/tui_memory.py target/release/lookalike /tmp/old/lookalike
"""
import argparse
import os
import shutil
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "crates/lookalike/tests/fixtures/v1/catalog")


def tmux(sock, *args):
    return subprocess.run(["tmux", "-S", sock, *args], check=True, capture_output=True, text=True).stdout


def wait_for(sock, what, test, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        screen = tmux(sock, "capture-pane", "-p", "-t", "m")
        if test(screen):
            return screen
        time.sleep(0.3)
    raise SystemExit(f"timed out waiting for {what}:\n{screen}")


def status(pid):
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")}


def measure(binary, weights, catalog_src):
    work = tempfile.mkdtemp(prefix="tui-mem-")
    try:
        catalog, state, sock = os.path.join(work, "catalog"), os.path.join(work, "state"), os.path.join(work, "s")
        shutil.copytree(catalog_src, catalog)
        images = os.path.join(catalog, "images")
        spare = sorted(os.listdir(images))[0]
        shutil.move(os.path.join(images, spare), os.path.join(work, spare))
        base = [binary, "--weights", weights, "--catalog", catalog, "--state-dir", state]
        subprocess.run(base + ["index"], check=True, capture_output=True)
        cmd = " ".join(base + ["tui", "--graphics", "halfblocks", images])
        tmux(sock, "new-session", "-d", "-s", "m", "-x", "120", "-y", "36", cmd)
        pid = int(tmux(sock, "display", "-p", "-t", "m", "#{pane_pid}").strip())
        photo = sorted(os.listdir(images))[0]
        wait_for(sock, "the picker", lambda s: photo in s)
        tmux(sock, "send-keys", "-t", "m", "/")
        tmux(sock, "send-keys", "-t", "m", "-l", photo.split(".")[0])
        tmux(sock, "send-keys", "-t", "m", "Enter")
        wait_for(sock, "results", lambda s: "Results 1" in s and "%" in s)
        after_query = status(pid)
        shutil.move(os.path.join(work, spare), os.path.join(images, spare))
        tmux(sock, "send-keys", "-t", "m", "r")
        wait_for(sock, "the reindex", lambda s: "reindexed" in s)
        wait_for(sock, "results again", lambda s: "Results 1" in s and "%" in s)
        time.sleep(3)
        after_reindex = status(pid)
        tmux(sock, "send-keys", "-t", "m", "q")
        return after_query, after_reindex
    finally:
        subprocess.run(["tmux", "-S", os.path.join(work, "s"), "kill-server"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("binaries", nargs="+")
    p.add_argument("--weights", default=os.path.join(ROOT, "weights/resnet50.safetensors"))
    p.add_argument("--catalog", default=FIXTURE)
    args = p.parse_args()
    for binary in args.binaries:
        q, r = measure(os.path.abspath(binary), args.weights, args.catalog)
        print(f"{binary}: after a query RSS {q['VmRSS']:.0f} MiB; after a reindex and a new search "
              f"RSS {r['VmRSS']:.0f} MiB, peak {r['VmHWM']:.0f} MiB")


if __name__ == "__main__":
    main()
