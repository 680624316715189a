"""Providers for notebooks executed by papermill in tests: ``-p providers nb_fakes:sentiment``.

The kernel is another process, so a fake backend cannot be handed to it as an object; the notebook imports
one of these functions instead (tests put this folder on the kernel's PYTHONPATH). Each returns
``{profile: Provider}`` for the ``fake`` target.
"""

from __future__ import annotations

import json

from workbench.testing import FakeBackend, FakeRequest, Reply

PROFILE = "fake-openai"  # FakeBackend().provider("openai").profile.name
POSITIVE = ("love", "fantastic", "great", "wonderful", "excellent", "faster", "best", "delicious", "perfect",
            "amazing", "happy", "recommend", "beautiful", "superb", "friendly", "enjoy")

# Text that must never run in a report: a script element and an event handler.
HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"><b>bold?</b> positive'


def _label(text: str) -> str:
    return "positive" if any(w in text.lower() for w in POSITIVE) else "negative"


def _sentiment(req: FakeRequest) -> Reply:
    label = _label(req.user_text)
    if (req.body or {}).get("response_format"):
        text = json.dumps({"label": label})
    elif req.system_text:
        text = label.capitalize()
    else:  # the bare prompt rambles, as a small model does
        text = f"Thanks for sharing! {req.user_text[:40]}"
    return Reply(text=text, system_fingerprint="fp_fake0001", model="gpt-4o-mini-2024-07-18")


def sentiment():
    return {PROFILE: FakeBackend(_sentiment).provider("openai")}


def hostile():
    return {PROFILE: FakeBackend(lambda req: Reply(text=HOSTILE, system_fingerprint="fp_fake0001")).provider("openai")}


# An answer that tries every trick on a reader: the backend's own key echoed back (a known secret), a
# right-to-left override that makes "liaf" read as "fail" reversed, a zero-width space, and terminal escapes.
def tricky_text() -> str:
    from workbench.testing import FAKE_API_KEY

    return f"positive \u202eliaf\u202c ok\u200bay \x1b[2J\x1b]0;title\x07 key={FAKE_API_KEY} end"


def tricky():
    return {PROFILE: FakeBackend(lambda req: Reply(text=tricky_text(), system_fingerprint="fp_fake0001"))
            .provider("openai")}
