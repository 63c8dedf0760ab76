"""A store that cannot be written still opens for reading, and a turn says why it was not saved.

The conditions are real, never a mocked ``sqlite3``: a tmpfs mounted for the test and remounted
read-only (EROFS, which binds root too), a tiny tmpfs filled to the last byte (ENOSPC, SQLITE_FULL),
and a store that root owns read by the unprivileged user ``nobody`` in a subprocess (file
permissions, which root itself bypasses). Mounting needs root with CAP_SYS_ADMIN, and the
``nobody`` test needs root: elsewhere these tests are skipped with the reason — except in CI
(``CI=true``, which runs as root), where they fail instead, so they never go quietly unrun.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ci_env import unavailable
from IPython.core.interactiveshell import InteractiveShell

import hermes_nb
from hermes_nb.core.exceptions import StoreError, StoreReadOnlyError, StoreVersionError
from hermes_nb.store import close_stores, join_background
from hermes_nb.store.database import MIGRATIONS, Store, get_store
from hermes_nb.store.sessions import Session

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "_store_worker.py"

pytestmark = pytest.mark.usefixtures("stores_closed")


# -- the conditions ----------------------------------------------------------------------------


class Tmpfs:
    """A tmpfs mounted on ``path`` for one test: remounted read-only, or filled up, on demand."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _mount(self, *args: str) -> None:
        subprocess.run(["mount", *args], check=True, capture_output=True, text=True)

    def read_only(self) -> None:
        """Every store closed (a remount refuses files open for writing), then read-only."""
        _release()
        self._mount("-o", "remount,ro", str(self.path))

    def writable(self) -> None:
        _release()
        self._mount("-o", "remount,rw", str(self.path))

    def fill(self) -> Path:
        """Write a file until the filesystem has not one byte left; returns it."""
        filler = self.path / "filler"
        with filler.open("ab", buffering=0) as fh:
            size = 1 << 16
            while size:
                try:
                    fh.write(b"\0" * size)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    size //= 2
        assert os.statvfs(self.path).f_bavail == 0
        return filler


def _unavailable(reason: str) -> None:
    """Skip, with the reason; in CI, fail: CI runs as root, where the mechanism must work."""
    unavailable(reason, "CI must run these tests (as root)")


def _release() -> None:
    join_background(10)
    close_stores()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Tmpfs]]:
    """``tmpfs("1m")`` mounts a tmpfs of that size in the test's directory; unmounted after."""
    if not sys.platform.startswith("linux") or shutil.which("mount") is None:
        _unavailable("mounting a tmpfs needs Linux and mount(8)")
    mounted: list[Path] = []

    def make(size: str) -> Tmpfs:
        path = tmp_path / f"fs{len(mounted)}"
        path.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            _unavailable(f"mounting a tmpfs needs root with CAP_SYS_ADMIN ({done.stderr.strip()})")
        mounted.append(path)
        return Tmpfs(path)

    yield make
    _release()
    for path in mounted:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def stored(tmpfs: Callable[[str], Tmpfs], monkeypatch: pytest.MonkeyPatch) -> Tmpfs:
    """A tmpfs holding ``$HERMES_NB_HOME`` with the session ``nb`` (two stored turns), every
    store closed: remount it read-only, or fill it, next."""
    fs = tmpfs("4m")
    monkeypatch.setenv("HERMES_NB_HOME", str(fs.path / "home"))
    session = Session.open_or_create("nb", profile="echo")
    for i in range(2):
        run = session.chat(f"stored question {i}", delay=0, reply=f"stored answer {i}").wait(30)
        assert run.status == "done"
    _release()
    return fs


def _one_sentence(text: str) -> None:
    assert text.endswith(".")
    assert ". " not in text.rstrip("."), text
    assert "Traceback" not in text and "sqlite3" not in text


def _dump() -> dict[str, list[tuple[object, ...]]]:
    """Every row, read by a store of its own (the cached one stays closed)."""
    store = Store(Path(os.environ["HERMES_NB_HOME"]) / "sessions.db")
    try:
        return store.dump()
    finally:
        store.close()


# -- a read-only filesystem ----------------------------------------------------------------------


def test_read_only_filesystem_reads_history_search_and_export(stored: Tmpfs) -> None:
    before = _dump()
    stored.read_only()
    store = get_store()
    assert store.read_only == "is on a read-only filesystem"
    session = Session.open("nb")
    assert [m.content for m in session.messages] == [
        "stored question 0",
        "stored answer 0",
        "stored question 1",
        "stored answer 1",
    ]
    assert store.history(session.id)[-1] == {"role": "assistant", "content": "stored answer 1"}
    assert [s.name for s in hermes_nb.sessions.list()] == ["nb"]
    assert [h.position for h in hermes_nb.sessions.search("stored answer")] == [2, 4]
    assert "stored answer 1" in session.export("md")
    assert json.loads(session.export("json"))["session"]["name"] == "nb"
    assert store.dump() == before
    assert sorted(p.name for p in (stored.path / "home").iterdir()) == ["sessions.db"]

    with pytest.raises(StoreReadOnlyError) as info:
        session.rename("other")
    assert info.value.message == (
        f"The session store {store.path} is on a read-only filesystem, so nothing new can be "
        "saved in it."
    )
    assert "History, search and export still work" in info.value.hint
    with pytest.raises(StoreReadOnlyError):
        session.branch(2)
    with pytest.raises(StoreReadOnlyError):
        session.delete()
    with pytest.raises(StoreReadOnlyError):  # before the model is asked for a summary
        session.compress(keep_last=0)
    assert Session.new("fresh").unsaved  # a handle only: its turns say they were not saved
    assert store.dump() == before


def test_turn_on_a_read_only_store_is_shown_and_says_it_was_not_saved(stored: Tmpfs) -> None:
    before = _dump()
    stored.read_only()
    session = Session.open("nb")
    first = session.chat("an unsaved question", delay=0, reply="an unsaved answer").wait(30)
    assert first.status == "done"
    assert first.text == "an unsaved answer"
    assert first.error is None
    path = get_store().path
    assert first.notice == (
        f"This turn was not saved: the session store {path} is on a read-only filesystem, so "
        "it is shown here only and the stored history is unchanged."
    )
    _one_sentence(first.notice)
    # The next turn of the same handle is sent the unsaved turn too (the echo model counts the
    # words it was sent), and is not saved either.
    second = session.chat("an unsaved question", delay=0, reply="an unsaved answer").wait(30)
    assert second.notice == first.notice
    assert second.usage["prompt_tokens"] > first.usage["prompt_tokens"]
    assert len(session.messages) == 4
    assert get_store().dump() == before


def test_a_stopped_or_failed_turn_on_a_read_only_store_says_it_too(stored: Tmpfs) -> None:
    stored.read_only()
    session = Session.open("nb")
    run = session.chat("stop me", delay=0.05, reply="slow " * 200)
    while not run.text:
        run.wait_for_event(run.last_event_id, timeout=10)
    run.cancel()
    run.wait(30)
    assert run.status == "stopped"
    assert run.notice is not None
    assert run.notice.startswith("Task cancelled.")
    assert run.notice.endswith("so it is shown here only and the stored history is unchanged.")
    failed = session.chat("fail", delay=0, fail="rate_limit").wait(30)
    assert failed.status == "error"
    assert failed.error is not None
    assert failed.error["hint"].endswith("the stored history is unchanged.")
    assert "This turn was not saved" in failed.error["hint"]


def test_uncheckpointed_commits_are_read_from_a_read_only_filesystem(
    stored: Tmpfs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that died left its commits in the -wal file: read with its -shm file, and,
    when the -shm file is gone too (it cannot be created), from a private copy."""
    home = stored.path / "home"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HERMES_NB_HOME": str(home)}
    subprocess.run([sys.executable, str(WORKER), "commit-and-exit", "crashed"], env=env, check=True)
    assert (home / "sessions.db-wal").stat().st_size > 0
    shm = (home / "sessions.db-shm").read_bytes()
    stored.read_only()
    assert Session.open("crashed").messages[0].content == "kept in the wal"
    assert len(Session.open("nb").messages) == 4

    stored.writable()
    (home / "sessions.db-shm").unlink()
    stored.read_only()
    store = get_store()
    assert store.read_only == "is on a read-only filesystem"
    assert [m.content for m in Session.open("crashed").messages] == ["kept in the wal", "me too"]
    _release()
    assert len(shm) > 0
    assert sorted(p.name for p in home.iterdir()) == ["sessions.db", "sessions.db-wal"]


def test_pending_migrations_on_a_read_only_store(
    tmpfs: Callable[[str], Tmpfs], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written by an older hermes_nb (migrations 001–005): read with the schema it has. One
    written before full-text search (001–003) reads, and search says in one sentence why not."""
    fs = tmpfs("2m")
    older, oldest = fs.path / "older", fs.path / "oldest"
    for home, count in ((older, 5), (oldest, 3)):
        home.mkdir()
        db = sqlite3.connect(home / "sessions.db", isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("CREATE TABLE _hermes_migrations (name TEXT PRIMARY KEY, applied_at REAL)")
        for migration in MIGRATIONS[:count]:
            for statement in migration.statements:
                db.execute(statement)
            db.execute("INSERT INTO _hermes_migrations VALUES (?, 0)", (migration.name,))
        db.execute(f"PRAGMA user_version = {count}")
        db.execute(
            "INSERT INTO sessions (id, name, source, archived, created_at, updated_at) "
            "VALUES ('a1b2c3', 'old', 'new', 0, 0, 0)"
        )
        db.execute(
            "INSERT INTO messages (session_id, position, role, content, created_at) "
            "VALUES ('a1b2c3', 1, 'user', 'an old question', 0)"
        )
        db.close()
    fs.read_only()

    monkeypatch.setenv("HERMES_NB_HOME", str(older))
    assert [m.content for m in Session.open("old").messages] == ["an old question"]
    assert [h.session_id for h in hermes_nb.sessions.search("old question")] == ["a1b2c3"]
    run = Session.open("old").chat("new", profile="echo", delay=0, reply="answer").wait(30)
    assert (run.status, run.text) == ("done", "answer")
    assert run.notice is not None and "was not saved" in run.notice

    monkeypatch.setenv("HERMES_NB_HOME", str(oldest))
    assert [m.content for m in Session.open("old").messages] == ["an old question"]
    with pytest.raises(StoreError) as info:
        hermes_nb.sessions.search("old")
    assert info.value.message == (
        f"The session store {oldest / 'sessions.db'} was written by an older hermes_nb and "
        "cannot be upgraded while it is on a read-only filesystem."
    )


def test_a_newer_store_on_a_read_only_filesystem_is_still_refused(
    tmpfs: Callable[[str], Tmpfs], monkeypatch: pytest.MonkeyPatch
) -> None:
    fs = tmpfs("1m")
    monkeypatch.setenv("HERMES_NB_HOME", str(fs.path))
    get_store().create_session(name="x")
    _release()
    db = sqlite3.connect(fs.path / "sessions.db", isolation_level=None)
    db.execute("INSERT INTO _hermes_migrations VALUES ('999_from_the_future', 0)")
    db.close()
    fs.read_only()
    with pytest.raises(StoreVersionError, match="newer hermes_nb"):
        get_store()


def test_a_store_that_cannot_be_created_reads_as_empty(
    tmpfs: Callable[[str], Tmpfs], monkeypatch: pytest.MonkeyPatch
) -> None:
    fs = tmpfs("1m")
    fs.read_only()
    home = fs.path / "hermes" / "home"
    monkeypatch.setenv("HERMES_NB_HOME", str(home))
    store = get_store()
    assert store.read_only == (
        f"does not exist and cannot be created ({fs.path} is on a read-only filesystem)"
    )
    assert hermes_nb.sessions.list() == []
    assert hermes_nb.sessions.search("anything") == []
    session = Session.open_or_create("notebook:x.ipynb", profile="echo")
    assert session.unsaved
    assert session.messages == []
    assert session.name == "notebook:x.ipynb"
    assert "notebook:x.ipynb" in session.export("md")
    run = session.chat("hello", delay=0, reply="hi").wait(30)
    assert (run.status, run.text) == ("done", "hi")
    assert run.notice == (
        f"This turn was not saved: the session store {home / 'sessions.db'} does not exist and "
        f"cannot be created ({fs.path} is on a read-only filesystem), so it is shown here only "
        "and the stored history is unchanged."
    )
    assert not home.exists()


# -- a full disk ------------------------------------------------------------------------------


def test_a_full_disk_still_reads_and_a_turn_says_it_was_not_saved(stored: Tmpfs) -> None:
    before = _dump()
    filler = stored.fill()
    store = get_store()
    assert store.read_only == "is on a full disk"
    session = Session.open("nb")
    assert len(session.messages) == 4
    run = session.chat("one more", delay=0, reply="shown anyway").wait(30)
    assert (run.status, run.text) == ("done", "shown anyway")
    assert run.notice == (
        f"This turn was not saved: the session store {store.path} is on a full disk, so it is "
        "shown here only and the stored history is unchanged."
    )
    _release()
    filler.unlink()
    assert _dump() == before


def test_the_disk_fills_up_during_a_turn(stored: Tmpfs) -> None:
    """The prompt was stored; the reply cannot be: it streams whole, and one sentence says
    what is kept. Once there is room again, the store takes turns as before."""
    session = Session.open("nb")
    reply = "x" * 400_000  # needs new pages in the -wal file, which cannot grow
    run = session.chat("the disk fills now", delay=0.1, chunk_size=25_000, reply=reply)
    while not run.text:
        run.wait_for_event(run.last_event_id, timeout=10)
    filler = stored.fill()
    run.wait(30)
    assert run.status == "done"
    assert run.text == reply
    store = get_store()
    assert store.read_only is None  # opened writable; the write met the full disk
    assert run.notice == (
        f"This reply was not saved: the session store {store.path} is on a full disk; your "
        "prompt is stored, and the reply is shown here only."
    )
    _one_sentence(run.notice)
    filler.unlink()
    contents = [m.content for m in session.messages]
    assert contents[-1] == "the disk fills now"
    assert len(contents) == 5
    again = session.chat("room again", delay=0, reply="saved").wait(30)
    assert (again.status, again.notice) == ("done", None)
    assert [m.content for m in session.messages][-2:] == ["room again", "saved"]


def test_a_session_made_on_a_full_disk_is_stored_once_there_is_room(stored: Tmpfs) -> None:
    get_store()  # opened with room to spare: the disk fills while it is open
    filler = stored.fill()
    session = Session.new("later", profile="echo")
    assert session.unsaved
    run = session.chat("while full", delay=0, reply="not kept").wait(30)
    assert run.notice is not None and "is on a full disk" in run.notice
    filler.unlink()
    run = session.chat("with room", delay=0, reply="kept").wait(30)
    assert (run.status, run.notice) == ("done", None)
    assert not session.unsaved
    assert [m.content for m in Session.open("later").messages] == ["with room", "kept"]


# -- file permissions (an unprivileged user) ------------------------------------------------------


@pytest.mark.parametrize("leftovers", [False, True], ids=["clean", "wal-and-shm-left"])
def test_a_store_this_user_may_not_write(leftovers: bool) -> None:
    """The store belongs to root (mode 644 in a 755 directory); nobody reads it — also when a
    writer left its -wal and -shm files (root's, read-only to nobody)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        _unavailable("needs root, to start a process that drops to the user nobody")
    home = Path(tempfile.mkdtemp(prefix="hermes-nb-perm-"))
    try:
        home.chmod(0o755)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HERMES_NB_HOME": str(home)}
        setup = (
            "from hermes_nb.store.sessions import Session, join_background\n"
            "s = Session.open_or_create('nb', profile='echo')\n"
            "s.chat('stored question', delay=0, reply='stored answer').wait(30)\n"
            "join_background(10)\n"
        )
        subprocess.run([sys.executable, "-c", setup], env=env, check=True, timeout=60)
        if leftovers:
            subprocess.run(
                [sys.executable, str(WORKER), "commit-and-exit", "crashed"], env=env, check=True
            )
        for path in home.iterdir():
            path.chmod(0o644)
        names = sorted(p.name for p in home.iterdir())
        done = subprocess.run(
            [sys.executable, str(WORKER), "as-nobody"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout.splitlines()[-1])
        assert out["read_only"] == "is not writable by this user"
        assert out["history"] == ["stored question", "stored answer"]
        assert "nb" in out["sessions"]
        assert out["search"] and out["export"]
        assert out["refused"].endswith(
            "is not writable by this user, so nothing new can be saved in it."
        )
        assert (out["status"], out["text"]) == ("done", "a new answer")
        assert out["notice"] == (
            f"This turn was not saved: the session store {home / 'sessions.db'} is not writable "
            "by this user, so it is shown here only and the stored history is unchanged."
        )
        assert out["after"] == out["history"]
        assert sorted(p.name for p in home.iterdir()) == names
    finally:
        shutil.rmtree(home, ignore_errors=True)


# -- the magics --------------------------------------------------------------------------------


def test_magics_on_a_read_only_store(
    stored: Tmpfs,
    ip: InteractiveShell,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/me/analysis.ipynb")
    stored.read_only()
    ip.run_line_magic("hermes", "session nb")
    history = ip.run_line_magic("hermes", "history").data
    assert "4 messages" in history and "stored answer 1" in history
    assert "nb" in ip.run_line_magic("hermes", "sessions").data
    assert "stored" in ip.run_line_magic("hermes", "search answer").data
    assert "stored answer 0" in ip.run_line_magic("hermes", "export md").data
    capsys.readouterr()
    ip.run_line_magic("hermes", "-o delay=0 a question on a read-only store")
    out = capsys.readouterr().out
    assert "a question on a read-only store" in out  # the echo reply, shown
    path = get_store().path
    sentence = (
        f"This turn was not saved: the session store {path} is on a read-only filesystem, so it "
        "is shown here only and the stored history is unchanged."
    )
    assert sentence in out
    assert "Traceback" not in out
    assert "4 messages" in ip.run_line_magic("hermes", "history").data
    # The notebook's own session was never stored: it has no history, and a turn is not saved.
    hermes_nb.unload_ipython_extension(ip)
    hermes_nb.load_ipython_extension(ip)
    assert "has no messages yet" in ip.run_line_magic("hermes", "history").data
    ip.run_line_magic("hermes", "-o delay=0 hello")
    assert sentence in capsys.readouterr().out
    # A new named session says at once that it will not be saved.
    ip.run_line_magic("hermes", "session fresh")
    assert capsys.readouterr().out == (
        f"hermes: started session 'fresh' for this kernel only: the session store {path} is on "
        "a read-only filesystem, so it is not saved.\n"
    )


@pytest.mark.kernel
def test_kernel_history_and_a_turn_on_a_read_only_store(stored: Tmpfs) -> None:
    from kernel_harness import KernelHarness

    stored.read_only()
    home = stored.path / "home"
    with KernelHarness(home) as kernel:
        kernel.execute("%load_ext hermes_nb")
        kernel.execute("%hermes session nb")
        shown = kernel.execute("%hermes history")
        history = json.dumps([m["content"] for m in shown.iopub if "data" in m["content"]])
        assert "stored answer 1" in history and "4 messages" in history
        turn = kernel.execute("%hermes --plain -o delay=0 a kernel question", timeout=60)
        deadline = time.monotonic() + 30
        out = turn.stdout()
        while "not saved" not in out and time.monotonic() < deadline:
            time.sleep(0.1)
            out = "".join(
                m["content"]["text"]
                for m in kernel.iopub
                if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
            )
        assert "a kernel question" in out
        assert (
            f"This turn was not saved: the session store {home / 'sessions.db'} is on a "
            "read-only filesystem, so it is shown here only and the stored history is unchanged."
        ) in out
        assert "Traceback" not in out
    assert len(Session.open("nb").messages) == 4


def test_doctor_reads_a_read_only_store_and_says_turns_are_not_saved(stored: Tmpfs) -> None:
    """``%hermes doctor`` on a read-only filesystem: the store is checked (it is readable) and
    a warning says what that means, instead of "unable to open database file"."""
    from hermes_nb.doctor import Verdict, doctor_report

    stored.read_only()
    report = doctor_report()
    assert report.verdict("store") is Verdict.WARN, report.text()
    text = report.text()
    assert "healthy, 1 session, but it is on a read-only filesystem" in text
    assert "new turns are shown but not saved" in text
