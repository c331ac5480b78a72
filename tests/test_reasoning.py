"""The inline <think> splitter: every chunking gives the same split; nothing lost or doubled."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from qwq_magic.completion import Completion
from qwq_magic.events import ContentDelta, Event, ReasoningDelta, Reclassified
from qwq_magic.reasoning import ThinkSplitter, apply_events, split_text, think_mode_for


def run(chunks: list[str], mode: str = "open", fielded: list[str] | None = None) -> tuple[str, str]:
    sp = ThinkSplitter(mode)  # type: ignore[arg-type]
    out: list[Event] = []
    for r in fielded or []:
        sp.process(ReasoningDelta(r), out)
    for c in chunks:
        sp.process(ContentDelta(c), out)
    sp.flush(out)
    assert all(e.text for e in out if isinstance(e, (ReasoningDelta, ContentDelta))), "empty delta"
    assert sum(isinstance(e, Reclassified) for e in out) <= 1
    r, c = apply_events(out)
    # the Completion folds the same events to the same texts
    comp = Completion()
    for e in out:
        comp.add(e)
    assert (comp.reasoning, comp.content) == (r, c)
    return r, c


def test_missing_opening_tag_qwq_template() -> None:
    assert run(["Okay, the user says hi.\n", "</think>", "\n\nHello!"]) == (
        "Okay, the user says hi.\n", "Hello!")


def test_inline_open_and_close_tags() -> None:
    assert run(["<think>\nhmm</think>\n\nAnswer"], "auto") == ("\nhmm", "Answer")
    assert run(["<think>\nhmm</think>\n\nAnswer"], "open") == ("\nhmm", "Answer")


def test_no_tags_auto_is_all_answer_open_is_all_reasoning() -> None:
    assert run(["Just an ", "answer."], "auto") == ("", "Just an answer.")
    # QwQ template: the stream stopped before </think> (max_tokens): it is all reasoning
    assert run(["still thinking about", " it"], "open") == ("still thinking about it", "")


def test_unclosed_tag_at_length_stays_reasoning() -> None:
    assert run(["<think>", "step 1, step 2"], "auto") == ("step 1, step 2", "")


def test_only_first_close_ends_reasoning() -> None:
    assert run(["a</think>b</think>c"]) == ("a", "b</think>c")


def test_tag_cut_at_every_position() -> None:
    text = "think more</think>\n\nThe answer"
    for i in range(len(text) + 1):
        assert run([text[:i], text[i:]]) == ("think more", "The answer"), i


def test_partial_tag_at_end_of_stream_is_text() -> None:
    assert run(["reasoning </thi"]) == ("reasoning </thi", "")
    assert run(["<thi"], "auto") == ("", "<thi")


def test_thinking_off_drops_empty_template_block() -> None:
    assert run(["<think>\n\n</think>\n\nHi"], "off") == ("", "Hi")
    assert run(["Hi <think> there"], "off") == ("", "Hi <think> there")


def test_fielded_reasoning_disables_inline_split_but_strips_stray_tag() -> None:
    assert run(["</think>\n\nAnswer"], "open", fielded=["I think"]) == ("I think", "Answer")
    assert run(["Answer with </think> inside"], "open", fielded=["r"]) == (
        "r", "Answer with </think> inside")


def test_lone_angle_brackets_in_answer_survive() -> None:
    assert run(["</think>a < b and <b>bold</b> <"]) == ("", "a < b and <b>bold</b> <")


def test_think_mode_for_models() -> None:
    assert think_mode_for("@cf/qwen/qwq-32b") == "open"
    assert think_mode_for("Qwen/QwQ-32B") == "open"
    assert think_mode_for("alibaba/qwen3-32b") == "auto"
    assert think_mode_for("alibaba/qwen3-32b", enable_thinking=False) == "off"
    assert think_mode_for("llama3") == "auto"


# -- properties ------------------------------------------------------------------------------
ALPHABET = st.sampled_from([*list("ab <>/thinkT\n é€😀"), "</think>", "<think>", "</thi", "<th"])
texts = st.lists(ALPHABET, max_size=40).map("".join)


@st.composite
def chunkings(draw: st.DrawFn) -> tuple[str, list[str]]:
    text = draw(texts)
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=12)))
    pieces, prev = [], 0
    for c in [*cuts, len(text)]:
        pieces.append(text[prev:c])
        prev = c
    return text, pieces


@settings(max_examples=400, deadline=None)
@given(chunkings(), st.sampled_from(["open", "auto", "off"]))
def test_every_chunking_gives_the_same_split(tc: tuple[str, list[str]], mode: str) -> None:
    text, pieces = tc
    assert run(pieces, mode) == split_text(text, mode)  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None)
@given(texts, texts, st.lists(st.integers(0, 200), max_size=10))
def test_no_character_lost_or_duplicated(reasoning: str, answer: str, cuts: list[int]) -> None:
    """QwQ shape: R + </think> + "\\n\\n" + A splits into exactly R and A (R has no </think>;
    A's leading newlines are layout and dropped)."""
    reasoning = reasoning.replace("</think>", "")
    if reasoning.lstrip().startswith("<think>") or "<think>".startswith(reasoning.lstrip()):
        reasoning = "x" + reasoning  # a leading <think> is a tag, not text
    text = reasoning + "</think>\n\n" + answer
    pieces, prev = [], 0
    for c in [*sorted(min(c, len(text)) for c in cuts), len(text)]:
        pieces.append(text[prev:c])
        prev = c
    r, c = run(pieces, "open")
    assert r == reasoning
    assert c == answer.lstrip("\r\n")


# -- mode "auto": a </think> with no <think> makes everything before it reasoning --------------
def test_auto_close_without_open_reclassifies_once() -> None:
    sp = ThinkSplitter("auto")
    out: list[Event] = []
    for piece in ["Let me ", "think.", "</th", "ink>\n\nThe ", "answer </think> here"]:
        sp.process(ContentDelta(piece), out)
    sp.flush(out)
    recl = [e for e in out if isinstance(e, Reclassified)]
    assert recl == [Reclassified("Let me think.")]
    assert apply_events(out) == ("Let me think.", "The answer </think> here")


def test_auto_answer_without_tags_is_untouched() -> None:
    assert run(["Plain ", "answer with a < b"], "auto") == ("", "Plain answer with a < b")


@settings(max_examples=400, deadline=None)
@given(texts, texts, st.lists(st.integers(0, 200), max_size=10))
def test_auto_mode_qwq_shape_splits_like_open(reasoning: str, answer: str, cuts: list[int]) -> None:
    """R + </think> + A with no opening tag, in mode "auto": R is the reasoning (minus the
    leading newlines an answer start drops), A the answer — for every chunking."""
    reasoning = reasoning.replace("</think>", "").replace("<think>", "")
    if not reasoning.strip() or "<think>".startswith(reasoning.lstrip()):
        reasoning = "x" + reasoning
    text = reasoning + "</think>\n\n" + answer
    pieces, prev = [], 0
    for c in [*sorted(min(c, len(text)) for c in cuts), len(text)]:
        pieces.append(text[prev:c])
        prev = c
    assert run(pieces, "auto") == (reasoning.lstrip("\r\n"), answer.lstrip("\r\n"))
