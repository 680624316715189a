"""A conversation held with several variants at once: the same user message to all, a reply thread per variant.

The playground's chat mode is a thin view of this::

    chat = Conversation({"terse": [system...], "friendly": [system...]})   # each variant's opening messages
    chat.ask("And in French?")                  # one user message, a reply to come from every variant
    chat.messages_for("terse")                  # what to send to that variant now
    chat.reply("terse").finish("Et en français ?", completion)
    chat.to_case("terse", "chat-1")             # a dataset row that replays this conversation (see below)

Every variant keeps its own thread: its system message and few-shot turns (its *prefix*), then the exchanges, each
with the same user text and that variant's own answer. A saved case holds the exchanges without the prefix, in
the case column :data:`~workbench.variants.CONVERSATION`: a batch run sends each variant its own prefix followed
by the conversation, so the saved conversation is re-asked of every variant, not only of the one it came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import DataError
from .records import Completion
from .variants import CONVERSATION

REPLY_STATES = ("waiting", "streaming", "done", "stopped", "error")


@dataclass
class Reply:
    """One variant's answer to one user message, as it streams in and when it is done."""

    text: str = ""
    state: str = "waiting"  # one of REPLY_STATES
    completion: Completion | None = None
    error: str | None = None

    def stream(self, text_so_far: str) -> None:
        self.text, self.state = text_so_far, "streaming"

    def finish(self, completion: Completion, *, stopped: bool = False) -> None:
        self.text, self.completion = completion.text, completion
        if completion.tool_calls:  # the functions the model called, readably: name and arguments as JSON
            from .tools import show_call

            calls = "\n".join(f"-> {show_call(c)}" for c in completion.tool_calls)
            self.text = f"{self.text}\n{calls}" if self.text else calls
        self.state = "stopped" if stopped else "done"

    def fail(self, error: str) -> None:
        self.state, self.error = "error", error

    @property
    def settled(self) -> bool:
        """Done, stopped or failed: nothing more will arrive."""
        return self.state in ("done", "stopped", "error")


@dataclass
class Exchange:
    """One user message and each variant's reply to it."""

    user: str
    replies: dict[str, Reply] = field(default_factory=dict)


class Conversation:
    """Several reply threads sharing their user messages (see the module docstring).

    ``prefixes``: each variant's opening messages (system, few-shot turns), sent before the conversation.
    ``opening``: an exchange every thread starts from, per variant ``(user message, answer)`` - e.g. the run a
    chat continues - or nothing.
    """

    def __init__(self, prefixes: Mapping[str, Sequence[Mapping[str, Any]]],
                 opening: Mapping[str, tuple[str, str]] | None = None):
        if not prefixes:
            raise DataError("A conversation needs at least one variant.")
        self.prefixes = {name: [dict(m) for m in msgs] for name, msgs in prefixes.items()}
        self.opening = dict(opening or {})
        self.exchanges: list[Exchange] = []

    @property
    def variants(self) -> list[str]:
        return list(self.prefixes)

    def ask(self, text: str) -> Exchange:
        """Send ``text`` to every variant: a new exchange whose replies are all waiting."""
        if not text.strip():
            raise DataError("Type a message first: an empty message is not sent.")
        if self.exchanges and not self.settled:
            raise DataError("The variants are still answering: wait, or Stop them, before the next message.")
        ex = Exchange(text, {name: Reply() for name in self.prefixes})
        self.exchanges.append(ex)
        return ex

    def regenerate(self) -> Exchange:
        """Ask the last message again: its replies are cleared and wait for new answers."""
        if not self.exchanges:
            raise DataError("Nothing to regenerate: send a message first.")
        last = self.exchanges[-1]
        last.replies = {name: Reply() for name in self.prefixes}
        return last

    @property
    def settled(self) -> bool:
        return all(r.settled for ex in self.exchanges[-1:] for r in ex.replies.values())

    def reply(self, variant: str, index: int = -1) -> Reply:
        return self.exchanges[index].replies[variant]

    def history(self, variant: str, *, upto_last_user: bool = True) -> list[dict[str, str]]:
        """The conversation of one variant without its prefix: the opening, then user/assistant messages.

        With ``upto_last_user`` the thread ends with the last user message (what is sent, what a case holds)."""
        if variant not in self.prefixes:
            raise DataError(f"No variant {variant!r} in this conversation; variants: {', '.join(self.prefixes)}.")
        out: list[dict[str, str]] = []
        if variant in self.opening:
            user, answer = self.opening[variant]
            out += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        for i, ex in enumerate(self.exchanges):
            out.append({"role": "user", "content": ex.user})
            last = i == len(self.exchanges) - 1
            if last and upto_last_user:
                break
            reply = ex.replies.get(variant)
            if reply is not None and reply.text:
                out.append({"role": "assistant", "content": reply.text})
        return out

    def messages_for(self, variant: str) -> list[dict[str, Any]]:
        """What to send ``variant`` for the last message: its prefix, its thread, the last user message."""
        if not self.exchanges:
            raise DataError("No message to answer yet: ask one first.")
        return self.prefixes[variant] + self.history(variant)

    def to_case(self, variant: str, case_id: str, *, expected: Any = None) -> dict[str, Any]:
        """A dataset row (JSONL-ready) that asks the last message again, after ``variant``'s side of the thread.

        Its ``conversation`` column holds the thread without the prefix, so every variant of a batch run answers
        it after its own system message and few-shot turns."""
        row: dict[str, Any] = {"id": case_id, CONVERSATION: self.history(variant)}
        if expected not in (None, ""):
            row["expected"] = expected
        return row
