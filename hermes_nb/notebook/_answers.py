"""Answering a run's prompts from the notebook: ``%hermes answer`` / ``approve`` / ``deny``,
the terminal's questions for a ``--wait`` turn, and the one-line messages about them.

The magics (:mod:`.magics`) parse the sub-command and print; this module picks the prompt an
answer goes to and words what happened, so the same sentences serve every channel.
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError

from ..core import short
from ..core.prompts import APPROVAL_DECISIONS

__all__ = [
    "answer_options",
    "answered",
    "how_to_answer",
    "open_prompt",
    "prompt_words",
    "read_answer",
    "unquote_whole",
]


def answer_options(name: str, arg: str) -> tuple[dict[str, Any], str]:
    """``--run RUN``, ``--prompt ID`` and ``--wait`` from the front of an answer's line (also
    ``--run=RUN``; ``--`` ends them); the rest, verbatim, is the answer."""
    picks: dict[str, Any] = {"run": None, "prompt": None, "wait": False}
    rest = arg.strip()
    while rest.startswith("--"):
        token, _, tail = rest.partition(" ")
        if token == "--":
            rest = tail.strip()
            break
        option, eq, value = token.partition("=")
        if option == "--wait" and not eq:
            picks["wait"] = True
        elif option in ("--run", "--prompt"):
            if not eq:
                value, _, tail = tail.strip().partition(" ")
            if not value:
                raise UsageError(f"%hermes {name} {option} needs a value.")
            picks[option[2:]] = value
        else:
            break  # not ours: the answer itself starts with dashes
        rest = tail.strip()
    return picks, rest


def unquote_whole(value: str) -> str:
    """An answer written in matching quotes (``"blue sky"``, ``''``) loses them."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def prompt_words(prompt: Any) -> str:
    """A prompt in a few words: the question, or the call to approve."""
    if prompt.kind == "approval":
        return f"approve {short(prompt.detail or prompt.text, 80)}"
    return f"“{short(prompt.text, 80)}”"


def answered(run: Any, prompt: Any, value: str) -> str:
    """The one line that says what was answered."""
    if prompt.kind == "approval":
        decision = APPROVAL_DECISIONS[value].lower() if value in APPROVAL_DECISIONS else repr(value)
        return f"hermes: {decision}: {short(prompt.detail or prompt.text, 120)} ({run.run_id})."
    return (
        f"hermes: answered {short(value.strip(), 80)!r} to “{short(prompt.text, 120)}” "
        f"({run.run_id})."
    )


def how_to_answer(run: Any, prompt: Any, *, view: bool) -> str:
    """One line: the run waits, for what, and how to answer it."""
    where = "in the chat view or " if view else ""
    if prompt.kind == "approval":
        return (
            f"hermes: {run.run_id} waits for your approval of "
            f"{short(prompt.detail or prompt.text, 120)} — answer {where}with %hermes approve "
            "(or approve session / approve always) or %hermes deny."
        )
    choices = f" (choices: {', '.join(prompt.choices)})" if prompt.choices else ""
    return (
        f"hermes: {run.run_id} waits for your answer to “{short(prompt.text, 120)}”{choices} — "
        f"answer {where}with %hermes answer TEXT."
    )


_YES = {"y": "once", "yes": "once", "n": "deny", "no": "deny"}


def read_answer(prompt: Any) -> str | None:
    """Ask on the terminal; the answer, or None (said why) to ask again."""
    if prompt.kind == "approval":
        raw = input("Allow? once / session / always / deny (y = once, n = deny): ").strip()
        value = _YES.get(raw.lower(), raw.lower())
        if value not in APPROVAL_DECISIONS:
            print(f"hermes: {raw!r} is not an answer; type once, session, always, deny, y or n.")
            return None
        return value
    if prompt.choices:
        numbered = ", ".join(f"{n} = {c}" for n, c in enumerate(prompt.choices, start=1))
        raw = input(f"Your answer ({numbered}, or your own words): ").strip()
        if raw.isdigit() and 1 <= int(raw) <= len(prompt.choices):
            return str(prompt.choices[int(raw) - 1])
    else:
        raw = input("Your answer: ").strip()
    if not raw:
        print("hermes: an empty answer cannot be taken; type a reply.")
        return None
    return raw


def open_prompt(picks: dict[str, Any], *, approval: bool) -> tuple[Any, Any]:
    """The run and the prompt an answer goes to: ``--prompt`` by id, else the oldest open
    prompt (an approval, for approve and deny) of ``--run`` or of any run of this kernel."""
    from ..engine.runtime import get_runtime

    runtime = get_runtime()
    what = "approval" if approval else "prompt"
    if picks["run"] is not None:
        run = runtime.get(picks["run"])  # an unknown run: RunError, one line
        if run.settled:
            raise UsageError(
                f"{run.run_id} has already finished ({run.status}); nothing of it waits."
            )
        runs = [run]
    else:
        runs = runtime.runs()
    if picks["prompt"] is not None:
        for run in runs:
            prompt = run.prompts.get(picks["prompt"])
            if prompt is not None:
                break
        else:
            where = f"{runs[0].run_id}" if picks["run"] is not None else "this kernel's runs"
            raise UsageError(
                f"There is no prompt {picks['prompt']!r} in {where}; %hermes runs shows "
                "what is waiting."
            )
        if approval and prompt.kind != "approval":
            raise UsageError(
                f"Prompt {prompt.id} is a question, not an approval: answer it with "
                "%hermes answer TEXT."
            )
        return run, prompt
    open_prompts = [(r, p) for r in runs for p in r.pending]
    wanted = [(r, p) for r, p in open_prompts if p.kind == "approval" or not approval]
    if wanted:
        return wanted[0]
    scope = f"{runs[0].run_id}" if picks["run"] is not None else "this kernel"
    if open_prompts:  # only questions are open, and approve/deny was asked for
        run, prompt = open_prompts[0]
        raise UsageError(
            f"No approval is waiting in {scope}; {run.run_id} asks a question "
            f"(“{short(prompt.text, 80)}”): answer it with %hermes answer TEXT."
        )
    live = [r.run_id for r in runs if not r.settled]
    if live:
        raise UsageError(
            f"No {what} is waiting in {scope}: {', '.join(live)} "
            f"{'is' if len(live) == 1 else 'are'} still running and has not asked anything "
            "(%hermes --wait returns once a run asks)."
        )
    raise UsageError(f"No {what} is waiting for an answer in {scope}.")
