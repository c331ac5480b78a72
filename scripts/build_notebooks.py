"""Build the tutorial notebooks, record their replies, and save them with outputs.

    .venv/bin/python scripts/build_notebooks.py            # rebuild + re-record everything
    .venv/bin/python scripts/build_notebooks.py quickstart # one notebook

Recording runs each notebook in a real kernel with ``%qwq replay`` switched to ``%qwq record``,
against the local provider server (``qwq_magic.testing``) scripted with the replies below, so
the recordings need no key and no network. With a real key you can re-record against the real
provider instead: run the notebook with the replay line changed to ``%qwq record PATH``.
The saved notebooks are then executed again in pure replay mode, so the outputs you see on
GitHub are what a fresh clone produces.
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from qwq_magic.testing import ProviderServer, Reply

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
REC_DIR = NB_DIR / "recordings"


def md(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(text.strip())


def code(text: str, check: bool = False, raises: bool = False) -> nbformat.NotebookNode:
    """A code cell; nbval markers go in the cell tags (a cell magic must be the first line)."""
    cell = nbformat.v4.new_code_cell(text.strip())
    tags = (["nbval-check-output"] if check else []) + (["raises-exception"] if raises else [])
    if tags:
        cell.metadata["tags"] = tags
    return cell


def live_note(provider: str, env: str, model: str) -> str:
    return f"""
> **Runs offline.** The `%qwq replay` line below streams recorded replies (recorded from
> `qwq_magic`'s local test server, paced like a real stream), so this notebook needs no key and
> no network. **To use a real provider instead:** set `{env}` in the environment that starts
> Jupyter, then delete the `%qwq replay …` line (or run `%qwq live`). The same cells then call
> `{provider}` · `{model}` for real. Any OpenAI-compatible server works too:
> `%qwq use openai --base-url http://localhost:11434/v1 --model qwq` (Ollama).
"""


def setup(name: str, provider: str, model: str) -> nbformat.NotebookNode:
    return code(f"%load_ext qwq_magic\n%qwq replay recordings/{name}.jsonl\n"
                f"%qwq use {provider} --model {model}")


QWQ_THINK = ("Okay, the user wants {topic}. Let me think about what a first-year student "
             "already knows. They know what a list is, probably. So I should start from "
             "something concrete. Hmm, an analogy might help: a phone book. If I open it in the "
             "middle, I know which half the name is in. Then I halve again. Each step throws "
             "away half of what is left, so for a million names it takes about twenty steps, "
             "since two to the twentieth is about a million. Wait, I should also mention that "
             "the list must be sorted, otherwise halving tells us nothing. And a tiny code "
             "example in Python would make it concrete. Let me keep it short and friendly.")

NOTEBOOKS: dict[str, dict] = {}

# -- 1. quickstart ------------------------------------------------------------------------------
NOTEBOOKS["quickstart"] = {
    "provider": "deepinfra", "model": "Qwen/QwQ-32B", "env": "DEEPINFRA_TOKEN",
    "replies": [
        Reply(match="binary search", reasoning=QWQ_THINK.format(topic="binary search explained"),
              content="**Binary search** finds an item in a *sorted* list by halving the search "
                      "range at every step.\n\n1. Look at the middle element.\n2. If it is the "
                      "target, you are done.\n3. If the target is smaller, keep the left half; "
                      "otherwise keep the right half.\n\nA million items need at most about "
                      "**20** looks, because 2²⁰ ≈ 1,000,000.\n\n```python\ndef binary_search"
                      "(xs, target):\n    lo, hi = 0, len(xs) - 1\n    while lo <= hi:\n"
                      "        mid = (lo + hi) // 2\n        if xs[mid] == target:\n"
                      "            return mid\n        if xs[mid] < target:\n"
                      "            lo = mid + 1\n        else:\n            hi = mid - 1\n"
                      "    return -1\n```"),
        Reply(match="2**20", reasoning="The user asks for 2**20. 2^10 is 1024, so 2^20 is "
              "1024 squared: 1,048,576. Let me double-check: 1024 × 1024 = 1,048,576. Yes.",
              content="2**20 = **1,048,576**."),
        Reply(match="need a sorted", reasoning="They ask why the list has to be sorted. Because "
              "the comparison with the middle element only tells us which half to keep if "
              "everything left of it is smaller and everything right of it is larger.",
              content="Because the comparison with the middle element only tells you which "
              "half to throw away if the list is ordered: everything on the left is smaller, "
              "everything on the right is larger. In an unsorted list the target could be "
              "anywhere."),
    ],
    "cells": [
        md("# Quickstart: `%%qwq` in one minute\n\nStream a reasoning model (QwQ-32B) into a "
           "notebook cell: watch it think, see the thinking fold away when the answer starts, "
           "and get the result back as a Python object." + live_note(
               "DeepInfra", "DEEPINFRA_TOKEN", "Qwen/QwQ-32B")),
        setup("quickstart", "deepinfra", "Qwen/QwQ-32B"),
        md("## Ask\nThe cell body is the prompt. `{topic}` is filled in from the notebook; "
           "`-o answer` keeps the reply. The reasoning streams in an open **Thinking…** block, "
           "then folds to *Thought for N s* when the answer starts (click to reopen)."),
        code("topic = \"binary search\""),
        code("%%qwq --temperature 0.6 --top-p 0.95 --max-tokens 4096 -o answer\n"
             "Explain {topic} to a first-year student, with a short Python example."),
        md("## The result is a Python object\n`str(answer)` is the answer; `.reasoning`, "
           "`.usage`, `.timings` and `.params` are there too. `_qwq` always holds the last "
           "reply."),
        code("print(answer.status, answer.finish_reason)\nprint(answer.params)\n"
             "print(answer.content.splitlines()[0])", check=True),
        code("print(f\"{len(answer.reasoning.split())} reasoning words, "
             "{answer.usage.completion_tokens} completion tokens\")", check=True),
        md("## One-liners and conversations\n`%qwq QUESTION` asks a one-line question (end it with a period: IPython reads a trailing `?` as a help request). "
           "`--chat NAME` continues a conversation (earlier turns are sent back; the "
           "reasoning is not, as the QwQ model card advises)."),
        code("%qwq Compute 2**20."),
        code("%%qwq --chat study\nWhy does {topic} need a sorted list?"),
        code("%qwq history study"),
        md("## See exactly what is sent\n`--dry-run` shows the HTTP request, with the key "
           "masked, without sending it."),
        code("%%qwq --dry-run --temperature 0.6 --max-tokens 4096\nExplain {topic}."),
        md("## Your own prompts, still offline\n`bash scripts/demo.sh` also started the local "
           "provider server (`python -m qwq_magic.testing`, which answers any prompt with a "
           "short think and a reply). Leave the recording and talk to it:\n\n```python\n"
           "%qwq live\n%qwq use openai --base-url http://127.0.0.1:8765/vllm/v1 --model qwq\n"
           "```\n\nWith a real key, `%qwq use deepinfra` (or any preset) instead."),
        md("Next: [reasoning](reasoning.ipynb) · [structured output](structured_output.ipynb) "
           "· [prompt tuning](prompt_tuning.ipynb) · [chat panel](chat_panel.ipynb) · "
           "[teaching demo](teaching_demo.ipynb)."),
    ],
}

# -- 2. reasoning -------------------------------------------------------------------------------
NOTEBOOKS["reasoning"] = {
    "provider": "aimlapi", "model": "alibaba/qwen3-32b", "env": "AIMLAPI_KEY",
    "replies": [
        Reply(match="train leaves", reasoning="Let me set up the problem. Train A leaves at "
              "9:00 at 80 km/h. Train B leaves at 10:00 at 120 km/h from the same station in "
              "the same direction. At 10:00, A is 80 km ahead. B closes the gap at 120 - 80 = "
              "40 km/h. So it needs 80 / 40 = 2 hours. B catches A at 12:00. Check: A has "
              "travelled 3 h × 80 = 240 km, B 2 h × 120 = 240 km. Yes.",
              content="Train B catches up at **12:00**, 240 km from the station.\n\n"
                      "- Head start of A at 10:00: 80 km\n- Closing speed: 120 − 80 = 40 km/h\n"
                      "- Time to close the gap: 80 / 40 = **2 h**"),
        Reply(match="train leaves", reasoning="A leads by 80 km at 10:00; closing speed 40 "
              "km/h; two hours; so 12:00.", content="At **12:00** (after 2 hours)."),
        Reply(match="train leaves", reasoning="", content="Train B catches up at 12:00."),
        Reply.long(400, match="prime numbers"),
    ],
    "cells": [
        md("# Reasoning: watch it, fold it, budget it, switch it off\n\nQwen3-32B on AI/ML API "
           "can think before it answers (`enable_thinking`), with a cap on how long "
           "(`thinking_budget`)." + live_note("AI/ML API", "AIMLAPI_KEY", "alibaba/qwen3-32b")),
        setup("reasoning", "aimlapi", "alibaba/qwen3-32b"),
        code("question = \"A train leaves at 9:00 at 80 km/h; a second train leaves the same "
             "station at 10:00 at 120 km/h in the same direction. When does it catch up?\""),
        md("## Thinking on\nOn AI/ML API, Qwen3's `enable_thinking` defaults to **false**: "
           "`--thinking` turns it on. The live block counts tokens while the model thinks."),
        code("%%qwq --thinking --max-tokens 2048 -o full\n{question}"),
        md("## A thinking budget\n`--thinking-budget N` caps the reasoning tokens; the model "
           "then answers."),
        code("%%qwq --thinking --thinking-budget 32 -o budgeted\n{question}"),
        md("## Thinking off\n`--no-thinking` answers directly: faster and cheaper."),
        code("%%qwq --no-thinking -o direct\n{question}"),
        code("for name, c in [(\"full\", full), (\"budgeted\", budgeted), "
             "(\"direct\", direct)]:\n    print(f\"{name:9} reasoning words: "
             "{len(c.reasoning.split()):3}   answer: {c.content.splitlines()[0]}\")",
             check=True),
        md("## When thinking eats the budget\nReasoning models think for thousands of tokens. "
           "If `max_tokens` runs out *inside* the reasoning, there is no answer, and the output "
           "says so and how to fix it. (On Cloudflare Workers AI the default `max_tokens` is "
           "only 256!)"),
        code("%%qwq --thinking --max-tokens 200 -o cut\nList the prime numbers below 100 and "
             "explain each one."),
        code("print(cut.finish_reason, cut.reasoning_truncated, repr(cut.content))", check=True),
        md("## Hide the reasoning\n`--hide-reasoning` shows only a progress line and the "
           "answer; the reasoning is still on the result (`.reasoning`)."),
    ],
}

# -- 3. structured output -----------------------------------------------------------------------
PEOPLE = ('{"items": [\n {"name": "Ada Lovelace", "born": 1815, "field": "mathematics"},\n'
          ' {"name": "Alan Turing", "born": 1912, "field": "computer science"},\n'
          ' {"name": "Grace Hopper", "born": 1906, "field": "computer science"},\n'
          ' {"name": "Emmy Noether", "born": 1882, "field": "mathematics"}\n]}')
NOTEBOOKS["structured_output"] = {
    "provider": "deepinfra", "model": "Qwen/QwQ-32B", "env": "DEEPINFRA_TOKEN",
    "replies": [
        Reply(match="four pioneers", reasoning="I need four pioneers of computing or "
              "mathematics with birth years. Ada Lovelace, 1815. Alan Turing, 1912. Grace "
              "Hopper, 1906. Emmy Noether, 1882, mathematics. The schema wants a list of "
              "objects with name, born and field.", content=PEOPLE, pace=0.03),
        Reply(match="Extract the invoice", reasoning="The invoice text mentions ACME Corp, "
              "number INV-2041, total 1,250.00 EUR, due 2026-12-31.",
              content='```json\n{"vendor": "ACME Corp", "number": "INV-2041", '
                      '"total": 1250.0, "currency": "EUR", "due": "2026-12-31"}\n```'),
        Reply(match="Count the birds", reasoning="Three sparrows and two crows.",
              content='{"sparrows": 3, "crows": "two"}'),
    ],
    "cells": [
        md("# Structured output: JSON straight into Python\n\n`--json SCHEMA` asks the provider "
           "for JSON matching a schema (in the wire form that provider understands), strips the "
           "reasoning, validates, and stores the result: a dict, a pydantic object or, with "
           "`--df`, a pandas DataFrame." + live_note("DeepInfra", "DEEPINFRA_TOKEN",
                                                     "Qwen/QwQ-32B")),
        setup("structured_output", "deepinfra", "Qwen/QwQ-32B"),
        md("## A pydantic model → a DataFrame\nWhile the answer streams, the JSON is shown "
           "growing, pretty-printed, under the folded reasoning."),
        code("from pydantic import BaseModel\n\n\nclass Person(BaseModel):\n    name: str\n"
             "    born: int\n    field: str"),
        code("%%qwq --json Person -o people --df\nName four pioneers of computing or "
             "mathematics."),
        code("people.sort_values(\"born\")", check=True),
        md("## Any schema form\nA JSON-schema dict, a pydantic class, a JSON string, a "
           "`.json` file, or a compact field list like `llm`'s: `'vendor, number, total float, "
           "currency, due'`."),
        code("%%qwq --json 'vendor, number, total float, currency, due: ISO date' -o invoice\n"
             "Extract the invoice fields: \"ACME Corp invoice INV-2041, total EUR 1,250.00, "
             "payable by 31 Dec 2026\"."),
        code("invoice", check=True),
        md("## When the model gets it wrong\nInvalid JSON, a schema violation (with the path "
           "of the failing field) and a reply cut off at `max_tokens` are three different, "
           "clear errors. The variable is never set to something wrong; the raw text stays "
           "on `_qwq` and on the exception. `--retries N` re-asks with the error."),
        code("%%qwq --retries 0 --json '{\"type\": \"object\", \"properties\": "
             "{\"sparrows\": {\"type\": \"integer\"}, \"crows\": {\"type\": \"integer\"}}}' "
             "-o birds\nCount the birds: three sparrows and two crows.", raises=True),
        code("print(_qwq.content)", check=True),
    ],
}

# -- 4. prompt tuning ---------------------------------------------------------------------------
SLOGANS = ["Fresh bread, every morning.", "Warm loaves, warm hearts.",
           "Crust you can trust.", "Rise and shine with us.",
           "Where flour becomes magic at dawn.", "Baked today, gone by noon.",
           "Our ovens wake before you do.", "Good mornings start here.",
           "Butter, flour, love. Repeat.", "The neighbourhood's warmest corner.",
           "Knead we say more?", "From our oven to your table, still warm.",
           "Every crumb tells a story of the early hours we keep for you.",
           "Sourdough, sweet rolls, smiles.", "Bread worth getting up for.",
           "Hot from the oven, close to home."]
THOUGHTS = ["A slogan for a bakery. Short, warm.",
            "A slogan for a bakery. It should be short and warm. Maybe mention the morning, "
            "since bakers start early. Or the smell of bread. Let me pick one.",
            "A bakery slogan. Wordplay could work: knead / need, rise, crust / trust. But "
            "wordplay can feel cheesy. Something warm and simple might be better. Hmm, the "
            "morning angle is nice too: fresh bread before everyone is awake. Let me weigh "
            "both and go with the one that sounds friendliest."]
PRIME = [('{"prime": false, "reason": "221 = 13 × 17"}', "221: try 13: 13 × 17 = 221. Not "
          "prime."), ('{"prime": false, "reason": "13 × 17 = 221"}', "Check divisors up to "
          "14. 221 / 13 = 17. Composite."),
         ('{"prime": true, "reason": "no divisor up to 10"}', "2, 3, 5, 7 do not divide "
          "221, so it looks prime.")]
NOTEBOOKS["prompt_tuning"] = {
    "provider": "deepinfra", "model": "Qwen/QwQ-32B", "env": "DEEPINFRA_TOKEN",
    "replies": [
        *[Reply(match="slogan", reasoning=f"{THOUGHTS[i % 3]} Option {i + 1}: '{s}' Good.",
                content=s) for i, s in enumerate(SLOGANS)],
        *[Reply(match="221", reasoning=PRIME[i][1], content=PRIME[i][0])
          for i in (0, 1, 0, 0, 1, 2)],
    ],
    "cells": [
        md("# Prompt tuning: sliders, side-by-side sweeps, before and after\n\n"
           "`qm.ParamsPanel()` shows a control for every parameter the current provider "
           "supports, with that provider's documented range and default. `qm.compare` sends one "
           "prompt under several settings at once and shows the replies side by side as they "
           "stream; `qm.tune` puts the sliders next to the newest answer and the one before."
           + live_note("DeepInfra", "DEEPINFRA_TOKEN", "Qwen/QwQ-32B")),
        setup("prompt_tuning", "deepinfra", "Qwen/QwQ-32B"),
        code("import qwq_magic as qm\n\nqm.ParamsPanel()"),
        md("The sliders, `%qwq set` and the Python API share **one** parameter object: move a "
           "slider and the next call uses it. Values are checked against the provider's ranges "
           "before anything is sent:"),
        code("%qwq set temperature=0.6 top_p=0.95"),
        code("%qwq set temperature=3", raises=True),
        code("%qwq params"),
        md("## Compare settings side by side\n`qm.compare` takes a list of values for any "
           "sampling parameter (also `model=[…]`, `system=[…]`, `prompt=[…]`); several lists "
           "multiply. Every combination × `runs` is checked first (one bad value refuses the "
           "whole sweep, nothing is sent), then sent concurrently. The grid fills in as the "
           "replies stream: one cell per run with its folded reasoning, the answer, reasoning / "
           "answer tokens, time and cost. A run that fails shows its error in its cell; the "
           "others still land."),
        code("cmp = qm.compare(\"Write a slogan for a bakery.\", temperature=[0.2, 0.6, 1.0], "
             "runs=3, max_tokens=512)"),
        md("`cmp.df` has one row per run: the swept values, then the answer, the reasoning and "
           "the figures."),
        code("cmp.df[[\"temperature\", \"run\", \"answer\", \"reasoning_tokens\", "
             "\"answer_tokens\", \"status\"]]", check=True),
        md("`cmp.plot()` draws reasoning tokens, answer tokens and seconds per setting, each "
           "run a point and the median a line (matplotlib is imported only now)."),
        code("cmp.plot()"),
        md("## Which setting agrees with itself?\nWith `json_schema` the parsed fields become "
           "columns, so agreement across runs is visible, and the grid's last line names the "
           "most consistent setting."),
        code("votes = qm.compare(\"Is 221 a prime number?\", json_schema=\"prime bool, reason\","
             "\n                   temperature=[0.2, 1.0], runs=3, max_tokens=512)"),
        code("print(votes.summary())", check=True),
        code("votes.df[[\"temperature\", \"run\", \"prime\", \"reason\"]]", check=True),
        md("## The same from the magic\n`--compare NAME=V1,V2` (repeat it to multiply) and "
           "`--runs N`; `-o` keeps the comparison."),
        code("%%qwq --compare temperature=0.2,1.0 --runs 2 --max-tokens 512 -o cmp2\n"
             "Write a slogan for a bakery."),
        code("cmp2.df[[\"temperature\", \"run\", \"answer\"]]", check=True),
        md("## A tuning bench: before and after\n`qm.tune(prompt)` shows the sliders, a "
           "**Run** button (tick *auto-run* to run whenever a slider is released), the newest "
           "answer beside the previous one, and what changed: the parameters, the token counts "
           "and a word-level diff of the answer. It keeps the last few runs. Here two runs "
           "are started from Python; in a live notebook, move a slider and press Run."),
        code("bench = qm.tune(\"Write a slogan for a bakery.\")\n"
             "bench.run(wait=True)\n"
             "qm.session.params.temperature = 1.0  # what moving the slider does\n"
             "bench.run(wait=True)\n"
             "bench"),
        code("print(\"\\n\".join(bench.changes()))", check=True),
        md("## How much faster is concurrent?\nThe runs of a sweep go out together (at most "
           "`concurrency` at a time, 4 by default). This cell measures it against the local "
           "provider server with 0.5 s of latency before each reply, over real HTTP: 8 runs at "
           "once versus one after another."),
        code("import time\n\nfrom qwq_magic.testing import ProviderServer\n\n"
             "with ProviderServer(latency=0.5) as srv:\n"
             "    local = qm.Client(\"openai\", **srv.client_kwargs(\"vllm\"))\n"
             "    srv.latency = 0\n"
             "    qm.compare(\"Hi.\", temperature=[0.2, 0.4], client=local, show=\"none\")"
             "  # warm up\n"
             "    srv.latency = 0.5\n"
             "    wall = {}\n"
             "    for conc in (8, 1):\n"
             "        t0 = time.perf_counter()\n"
             "        qm.compare(\"Hi.\", temperature=[0.2, 0.4, 0.6, 0.8], runs=2, "
             "concurrency=conc,\n                   client=local, show=\"none\")\n"
             "        wall[conc] = time.perf_counter() - t0\n"
             "print(f\"8 at once: {wall[8]:.2f} s · one after another: {wall[1]:.2f} s · "
             "{wall[1] / wall[8]:.1f}× faster\")"),
        md("Measured by `benchmarks/bench_compare.py` on a 2-core machine (median of 5): "
           "**0.57 s** for 8 concurrent runs versus **4.35 s** one after another, "
           "**7.6×** faster (the ideal is 8×: each reply also takes ~45 ms to stream)."),
    ],
}

# -- 5. chat panel ------------------------------------------------------------------------------
NOTEBOOKS["chat_panel"] = {
    "provider": "deepinfra", "model": "Qwen/QwQ-32B", "env": "DEEPINFRA_TOKEN",
    "replies": [
        Reply(match="recursion", reasoning="They want recursion explained simply. A function "
              "that calls itself on a smaller problem, with a base case that stops it. "
              "Factorial is the classic example.",
              content="**Recursion** is a function solving a problem by calling itself on a "
                      "smaller piece of it, until it reaches a *base case* it can answer "
                      "directly.\n\n```python\ndef factorial(n):\n    if n <= 1:      # base "
                      "case\n        return 1\n    return n * factorial(n - 1)\n```"),
        Reply(match="base case", reasoning="Without a base case the calls never stop; Python "
              "raises RecursionError after about 1000 frames.",
              content="Then it never stops: every call makes another call, until Python "
                      "gives up with `RecursionError: maximum recursion depth exceeded` "
                      "(about 1,000 nested calls by default)."),
    ],
    "cells": [
        md("# The chat panel\n\n`qm.ChatPanel()` is a chat in the notebook: the answer streams "
           "in, each reply's reasoning folds into a *Thought for N s* block, code blocks get a "
           "copy button, **Stop** cancels a long answer (the partial text stays), and the "
           "*Sampling* section has the same sliders as `qm.ParamsPanel()`." + live_note(
               "DeepInfra", "DEEPINFRA_TOKEN", "Qwen/QwQ-32B")),
        setup("chat_panel", "deepinfra", "Qwen/QwQ-32B"),
        code("import qwq_magic as qm\n\npanel = qm.ChatPanel()\npanel"),
        md("Type in the box (Enter sends, Shift+Enter starts a new line). Python can drive it "
           "too, and read the conversation back:"),
        code("await panel.send_async(\"Explain recursion in two sentences.\")\n"
             "await panel.send_async(\"What happens without a base case?\")"),
        code("for m in panel.conversation:\n    print(f\"{m['role']:>9}: "
             "{m['content'][:70]}\")", check=True),
        code("print(panel.last.status, panel.last.usage.completion_tokens)", check=True),
    ],
}

# -- 6. teaching demo ---------------------------------------------------------------------------
NOTEBOOKS["teaching_demo"] = {
    "provider": "deepinfra", "model": "Qwen/QwQ-32B", "env": "DEEPINFRA_TOKEN",
    "replies": [
        Reply(match="joke", reasoning="A joke about floating point for beginners. The classic "
              "is 0.1 + 0.2. Let me make it short.",
              content="Why did the float break up with the integer?\n\nIt needed "
                      "**0.30000000000000004** of space."),
        Reply(match="joke", reasoning="Another one, different from the last: rounding, maybe "
              "a bank.", content="A floating-point number walks into a bar and orders 0.3 "
                                 "beers. The barman pours 0.30000000000000004."),
        Reply(match="0.1 + 0.2", reasoning="Students often see 0.1 + 0.2 == 0.3 being False. "
              "Why? Binary floating point cannot represent 0.1 exactly: it is a repeating "
              "fraction in base 2, like 1/3 in base 10. So 0.1 is stored as "
              "0.1000000000000000055511151231257827, and 0.2 similarly, and the sum rounds to "
              "0.30000000000000004. The fix is math.isclose or decimal.Decimal. I should show "
              "the surprise first, then the reason, then the fix.",
              content="Because computers store numbers in **binary**, and 0.1 has no exact "
                      "binary form (like ⅓ has none in decimal). The tiny rounding errors add "
                      "up:\n\n```python\n>>> 0.1 + 0.2\n0.30000000000000004\n```\n\nCompare "
                      "floats with a tolerance instead:\n\n```python\nimport math\n"
                      "math.isclose(0.1 + 0.2, 0.3)   # True\n```"),
        Reply(match="money", reasoning="For money, use decimal.Decimal or integer cents.",
              content="Use `decimal.Decimal` (built for exact decimal arithmetic) or count "
                      "**integer cents**: `10 + 20 == 30` is always exact."),
    ],
    "cells": [
        md("# Teaching demo: a live lesson that cannot fail\n\nA classroom script: ask the "
           "question the students ask, let them *guess before they see the model's reasoning*, "
           "reveal it on cue, and hand the conversation out. Recorded, so it runs the same with "
           "no Wi-Fi and no key." + live_note("DeepInfra", "DEEPINFRA_TOKEN", "Qwen/QwQ-32B")
           + "\n\n**Record the lesson once.** The night before, with a key, run the notebook with "
           "`%qwq record lesson.jsonl` instead of the replay line below: every reply is appended "
           "to the file as it ends (one line per reply; `--new` starts the file afresh). In "
           "class, `%qwq replay lesson.jsonl` plays the replies back, with their original "
           "pacing (`--speed 2` twice as fast, `--speed 0` at once)."),
        setup("teaching_demo", "deepinfra", "Qwen/QwQ-32B"),
        md("**Step 1. Class mode.** From now on every output hides the model's reasoning behind "
           "a closed *Reveal reasoning* fold: the class guesses first. (`--show-reasoning` shows "
           "it for one cell; `%qwq class off` ends class mode.)"),
        code("%qwq class on"),
        md("**Step 2. Run it again, get another answer.** The same prompt asked twice was "
           "recorded twice, so the replay gives the two answers in the order they came (after "
           "the last one it starts again from the first; `%qwq replay PATH --raise` makes that "
           "an error instead)."),
        code("%%qwq --temperature 1.0\nTell me a joke about floating point."),
        code("%%qwq --temperature 1.0\nTell me a joke about floating point."),
        md("**Step 3.** Show the surprise."),
        code("0.1 + 0.2 == 0.3"),
        md("**Step 4.** Ask the model. Each output has a *Reveal reasoning* fold that anyone "
           "can open (it is plain HTML: it works in JupyterLab, Notebook 7, nbviewer and "
           "untrusted notebooks alike)."),
        code("%%qwq --chat lesson --temperature 0.6 --top-p 0.95\nWhy is 0.1 + 0.2 == 0.3 "
             "False in Python? Explain for beginners."),
        md("**Step 5.** The follow-up question remembers the conversation."),
        code("%%qwq --chat lesson\nSo what should I use for money?"),
        code("from decimal import Decimal\nprint(Decimal(\"0.1\") + Decimal(\"0.2\") == "
             "Decimal(\"0.3\"))", check=True),
        md("**Step 6. Reveal on cue.** One command opens every hidden block of the session, in "
           "place (each output is redrawn through its display id)."),
        code("%qwq reveal"),
        md("**Step 7. Hand it out.** `%qwq export lesson --to md` writes the conversation as "
           "Markdown (reasoning folded in `<details>`); `-o lesson.md` saves it to a file, "
           "`--to json` keeps the reasoning and usage of each reply, `--to cells -o "
           "handout.ipynb` writes one Markdown cell per turn. A chat panel has the same: "
           "`panel.export(\"md\")`."),
        code("%qwq export lesson --to md"),
        md("**Next week: the notebook is its own recording.** Every `%%qwq` output keeps its "
           "request key, reply and timings in its metadata, so a notebook run live once and "
           "saved replays offline, with the same answers in the same order and the original "
           "timing:\n\n```python\n%qwq replay teaching_demo.ipynb           # or "
           "qm.session.replay_notebook(\"teaching_demo.ipynb\")\n%qwq replay --pause        "
           "              # hold the replay while you talk; --resume goes on\n```"),
    ],
}


# -- 7. batches (qm.map) -------------------------------------------------------------------------
def batch_spec() -> dict:
    """The qm.map tutorial: dry run, a batch with a checkpoint, resume, JSON fields, a failing
    row, the magic form and Dask (synchronous scheduler, replayed from the same recording)."""
    reviews = [
        ("The ramen was rich and the broth perfect.", "positive", "ramen"),
        ("Cold fries, rude waiter, never again.", "negative", "fries"),
        ("Lovely curry but we waited forty minutes.", "mixed", "curry"),
        ("Best tiramisu I have had outside Italy.", "positive", "tiramisu"),
        ("The steak was grey and chewy.", "negative", "steak"),
        ("Pizza was fine, nothing special.", "mixed", "pizza"),
        ("Fresh oysters and a friendly bar.", "positive", "oysters"),
        ("Soup arrived lukewarm; dessert saved the evening.", "mixed", "soup"),
        ("Dumplings fell apart; too salty.", "negative", "dumplings"),
        ("Perfect pho on a rainy day.", "positive", "pho"),
    ]
    plain = "Classify the sentiment of this review as positive, negative or mixed. " \
            "Answer with one word. Review: {text}"
    fields = "Give the sentiment and the dish: {text}"
    replies = []
    for _ in range(2):  # the plain prompts run twice: pandas, then Dask
        replies += [Reply(match=f"one word. Review: {t}", reasoning=f"The review says: {t} "
                          f"That reads as {label}.", content=label) for t, label, _ in reviews]
    for i, (t, label, dish) in enumerate(reviews):
        content = ('I am not sure what this review means.' if i == 7 else
                   f'{{"sentiment": "{label}", "dish": "{dish}"}}')
        replies.append(Reply(match=f"and the dish: {t}", reasoning=f"Sentiment {label}; the "
                             f"dish is {dish}.", content=content))
    data = "[\n" + "".join(f"    {t!r},\n" for t, _, _ in reviews) + "]"
    return {
        "provider": "deepinfra", "model": "Qwen/QwQ-32B-Preview", "env": "DEEPINFRA_TOKEN",
        "replies": replies,
        "cells": [
            md("# Batches: one prompt over a DataFrame with `qm.map`\n\nClassify reviews, "
               "extract fields, label examples: `qm.map(template, df)` fills `{column}` from "
               "each row, runs the requests concurrently with a progress bar, keeps every "
               "failure in its own row, writes each finished row to a checkpoint, and resumes "
               "without redoing finished rows. `dry_run=True` prices the job first."
               + live_note("DeepInfra", "DEEPINFRA_TOKEN", "Qwen/QwQ-32B-Preview")),
            setup("batch", "deepinfra", "Qwen/QwQ-32B-Preview"),
            code("import tempfile\nfrom pathlib import Path\n\nimport pandas as pd\n\n"
                 "import qwq_magic as qm\n\nreviews = pd.DataFrame({\"text\": " + data
                 + "})\nreviews.index.name = \"review\"\n"
                 "checkpoint = Path(tempfile.mkdtemp()) / \"labels.sqlite\"\n"
                 f"template = {plain!r}"),
            md("## Cost first\n`dry_run=True` sends nothing: it counts the requests, the input "
               "tokens (estimated at ~4 characters per token when the model's tokenizer is not "
               "on this machine, and labelled so), the output cap (`max_tokens` per request, "
               "reasoning included) and the price range from the preset's prices."),
            code("qm.map(template, reviews, dry_run=True, max_tokens=1024)", check=True),
            md("## Run, with a checkpoint\nThe first six rows. Each finished row is written to "
               "`labels.sqlite` as it finishes; the result keeps the input's index."),
            code("first = qm.map(template, reviews.head(6), concurrency=4, checkpoint=checkpoint,"
                 " max_tokens=1024)\nfirst[[\"answer\", \"reasoning_tokens\", "
                 "\"answer_tokens\", \"error\"]]", check=True),
            md("## Resume\nThe same call over all ten rows sends only the four that are not in "
               "the checkpoint. (An interrupted run resumes the same way: Ctrl-C returns every "
               "finished row, and they are already in the checkpoint.)"),
            code("out = qm.map(template, reviews, concurrency=4, checkpoint=checkpoint, "
                 "max_tokens=1024)\nprint(f\"sent {out.attrs['sent']} of {len(out)} rows\")\n"
                 "reviews.join(out[[\"answer\", \"cost\"]])", check=True),
            md("## One column per field, and a row that fails\nWith `--json` (or "
               "`json_schema=` in Python) each schema field becomes a column. A reply that is "
               "not valid JSON does not stop the batch: its error is in its own `error` cell "
               "and its text in `raw`. This is the magic form: the cell is the template."),
            code("%%qwq --map reviews -o fields --json 'sentiment, dish' --concurrency 4\n"
                 + fields),
            code("fields[[\"sentiment\", \"dish\", \"raw\", \"error\"]]", check=True),
            md("## Bigger than one machine: Dask\nGive `qm.map` a Dask DataFrame and it returns "
               "one, computed partition by partition on your cluster (each partition runs its "
               "rows concurrently and checkpoints). Here the synchronous scheduler stands in "
               "for a `dask.distributed` cluster."),
            code("import dask.dataframe as dd\n\nlazy = qm.map(template, dd.from_pandas("
                 "reviews, npartitions=2), concurrency=4, max_tokens=1024)\n"
                 "lazy.compute(scheduler=\"synchronous\")[[\"answer\"]]", check=True),
            md("More: [docs/batch.md](../docs/batch.md) (resume keys, rate limits, Dask "
               "workers and keys)."),
        ],
    }


NOTEBOOKS["batch"] = batch_spec()


def build(name: str, spec: dict) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = copy.deepcopy(spec["cells"])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def record(name: str, spec: dict) -> None:
    rec = REC_DIR / f"{name}.jsonl"
    rec.unlink(missing_ok=True)
    nb = build(name, spec)
    nb.cells[1].source = nb.cells[1].source.replace("%qwq replay", "%qwq record")
    with ProviderServer(pace=0.02) as srv:
        srv.script(*spec["replies"])
        env = {"QWQ_PROVIDER": spec["provider"], "QWQ_BASE_URL": srv.base_url(spec["provider"]),
               spec["env"]: "test-key", "QWQ_REPLAY_SPEED": "0"}
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                           resources={"metadata": {"path": str(NB_DIR)}}).execute()
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    _report_errors(name, nb)
    print(f"recorded {rec.relative_to(ROOT)}: {sum(1 for _ in rec.open())} replies")


def execute_and_save(name: str, spec: dict) -> None:
    nb = build(name, spec)
    env_keep = {k: os.environ.pop(k) for k in list(os.environ)
                if k.startswith(("QWQ_", "DEEPINFRA", "AIMLAPI", "CLOUDFLARE"))}
    os.environ["QWQ_REPLAY_SPEED"] = "0"
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                       resources={"metadata": {"path": str(NB_DIR)}}).execute()
    finally:
        os.environ.pop("QWQ_REPLAY_SPEED", None)
        os.environ.update(env_keep)
    _report_errors(name, nb)
    nbformat.write(nb, NB_DIR / f"{name}.ipynb")
    print(f"wrote notebooks/{name}.ipynb")


def _report_errors(name: str, nb: nbformat.NotebookNode) -> None:
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.output_type == "error" and "raises-exception" not in cell.metadata.get(
                    "tags", []):
                sys.exit(f"{name} cell {i} failed: {out.ename}: {out.evalue}")


def main(names: list[str]) -> None:
    REC_DIR.mkdir(parents=True, exist_ok=True)
    for name in names or list(NOTEBOOKS):
        spec = NOTEBOOKS[name]
        record(name, spec)
        execute_and_save(name, spec)


if __name__ == "__main__":
    main(sys.argv[1:])
