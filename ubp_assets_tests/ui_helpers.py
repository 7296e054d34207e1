"""Helpers of the UI test: a real `dg dev` in a process group of its own, its GraphQL API,
and headless Debian chromium driven by playwright (never a downloaded browser)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from ubp_assets.instance import write_instance_yaml

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
INSTALL_HINT = "apt-get install chromium"

WORKSPACE_QUERY = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message stack }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""

RUN_QUERY = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId status tags { key value } }
    ... on PythonError { message }
  }
}
"""

MATERIALIZATIONS_QUERY = """
query Materializations($path: [String!]!, $partitions: [String!]) {
  assetOrError(assetKey: {path: $path}) {
    __typename
    ... on Asset { assetMaterializations(partitions: $partitions) { partition runId } }
  }
}
"""

TERMINAL_RUN_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}


def chromium_path() -> str | None:
    """Debian's chromium (or UBP_CHROMIUM), None when there is none."""
    for candidate in (os.environ.get("UBP_CHROMIUM", ""), CHROMIUM, shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


NO_CHROMIUM = (
    f"no chromium at {CHROMIUM} (nor on PATH): the UI test drives Debian's chromium and never "
    f"downloads a browser. Install it: `{INSTALL_HINT}`"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_dagster_home(home: Path) -> Path:
    """The instance `ubp run` sets up (queued runs, pool limit 1)."""
    write_instance_yaml(home)
    return home


class DagsterDev:
    """`dg dev` in the project (what the README runs) on a free port, its output in `log_path`."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None):
        self.env = env
        self.log_path = log_path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self) -> None:
        dg = Path(sys.executable).with_name("dg")
        assert dg.is_file(), f"no dg executable beside {sys.executable}"
        command = [str(dg), "dev", "--port", str(self.port), "--host", "127.0.0.1"]
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            command,
            cwd=REPO,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_until_up(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"dg dev exited with {self.proc.returncode}\n{self.log_tail()}"
                )
            if _answers(f"{self.url}/server_info"):
                return
            time.sleep(1)
        raise AssertionError(f"dg dev did not answer in {timeout:.0f}s\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM to dg dev (it shuts its webserver and daemon down), then the whole
        process group: SIGTERM, and SIGKILL for whatever is still there."""
        proc = self.proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=20)
            for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                if not _group_alive(proc.pid):
                    break
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, sig)
                deadline = time.monotonic() + grace
                while _group_alive(proc.pid) and time.monotonic() < deadline:
                    time.sleep(0.2)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        finally:
            if self._log is not None:
                self._log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        tail = "\n".join(self.log_text().splitlines()[-lines:])
        return f"--- dg dev log tail ({self.log_path}) ---\n{tail}"

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            answer = json.loads(reply.read())
        assert "errors" not in answer, f"GraphQL errors: {answer['errors']}"
        return answer["data"]

    def wait_for_locations(self, timeout: float = 120) -> list[dict]:
        """The workspace's location entries once none is loading any more."""
        deadline = time.monotonic() + timeout
        entries: list[dict] = []
        while time.monotonic() < deadline:
            workspace = self.graphql(WORKSPACE_QUERY)["workspaceOrError"]
            assert workspace["__typename"] == "Workspace", workspace
            entries = workspace["locationEntries"]
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                return entries
            time.sleep(1)
        raise AssertionError(f"code locations still loading after {timeout:.0f}s: {entries}")

    def materializations(self, asset: str, partition: str) -> list[dict]:
        variables = {"path": asset.split("/"), "partitions": [partition]}
        answer = self.graphql(MATERIALIZATIONS_QUERY, variables)["assetOrError"]
        assert answer["__typename"] == "Asset", answer
        return answer["assetMaterializations"]

    def wait_for_run(self, run_id: str, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        run: dict = {}
        while time.monotonic() < deadline:
            run = self.graphql(RUN_QUERY, {"runId": run_id})["runOrError"]
            if run.get("status") in TERMINAL_RUN_STATUSES:
                return run
            time.sleep(2)
        raise AssertionError(f"run {run_id} not finished after {timeout:.0f}s: {run}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status == 200
    except (OSError, urllib.error.URLError):
        return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # zombies of the group count as gone: only they are left once the leader is reaped
    return any(_live(pid) for pid in _group_members(pgid))


def _group_members(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                members.append(int(stat.parent.name))
    return members


def _live(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def log_problems(log: str, package_dir: Path) -> list[str]:
    """Lines of a dagster dev log that show an error, a traceback or a Python warning raised in
    (or pointing at) our package. Paths of the repository and the virtual environment are
    blanked first, so a checkout in a folder named ubp_assets does not count."""
    problems = []
    prefixes = sorted({sys.prefix, sys.base_prefix, str(REPO)}, key=len, reverse=True)
    for line in log.splitlines():
        if "ERROR" in line or "Traceback" in line:
            problems.append(line)
            continue
        if "Warning" not in line:
            continue
        if str(package_dir) in line:
            problems.append(line)
            continue
        blanked = line
        for prefix in prefixes:
            blanked = blanked.replace(prefix, "<path>")
        if re.search(r"ubp_assets", blanked):
            problems.append(line)
    return problems


@contextlib.contextmanager
def failure_evidence(page, out_dir: Path, dev: DagsterDev, step: str) -> Iterator[None]:
    """On any failure inside, save a screenshot and the page's HTML, and re-raise with their
    paths and the tail of the dagster dev log."""
    try:
        yield
    except Exception as exc:
        stem = re.sub(r"\W+", "_", step).strip("_")
        shot, html = out_dir / f"FAILED_{stem}.png", out_dir / f"FAILED_{stem}.html"
        notes = []
        try:
            page.screenshot(path=str(shot), full_page=True)
            html.write_text(page.content())
            notes.append(f"screenshot: {shot}\npage HTML: {html}\npage URL: {page.url}")
        except Exception as inner:
            notes.append(f"(could not save the page: {inner!r})")
        message = f"UI step '{step}' failed: {exc}\n" + "\n".join(notes) + "\n" + dev.log_tail()
        print(message, file=sys.stderr)
        raise AssertionError(message) from exc


def poll(check: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()
