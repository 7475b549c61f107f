"""A real tokenizer trained here (byte-level BPE, `tokenizers`) with a Qwen-style chat template.

No GPU model runs on this machine and no hub is reachable, so the tests train a small byte-level BPE on a corpus
of chat-formatted text, with ChatML's special tokens and Qwen3-Coder's tool-call format (<tool_call><function=...>
<parameter=...>) in its template. Byte-level BPE encodes any text, so every token id the double emits decodes
back to the text it came from.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
ADDED = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>"]

CHAT_TEMPLATE = (
    "{%- if messages and messages[0].role == 'system' %}{%- set sys = messages[0].content %}"
    "{%- else %}{%- set sys = '' %}{%- endif %}"
    "{%- if tools %}<|im_start|>system\n{{ sys }}\n\n# Tools\n\n<tools>"
    "{%- for tool in tools %}\n<function><name>{{ tool.function.name }}</name>"
    "<description>{{ tool.function.description }}</description>"
    "<parameters>{{ tool.function.parameters | tojson }}</parameters></function>{%- endfor %}\n</tools>\n\n"
    "Call a function with:\n<tool_call>\n<function=NAME>\n<parameter=NAME>\nVALUE\n</parameter>\n</function>\n"
    "</tool_call><|im_end|>\n"
    "{% elif sys %}<|im_start|>system\n{{ sys }}<|im_end|>\n{% endif %}"
    "{%- for m in messages %}"
    "{%- if m.role == 'user' %}<|im_start|>user\n{{ m.content }}<|im_end|>\n"
    "{% elif m.role == 'assistant' %}<|im_start|>assistant\n{{ m.content }}"
    "{%- for tc in m.tool_calls or [] %}\n<tool_call>\n<function={{ tc.function.name }}>"
    "{%- for k, v in tc.function.arguments.items() %}\n<parameter={{ k }}>\n"
    "{{ v if v is string else v | tojson }}\n</parameter>{%- endfor %}\n</function>\n</tool_call>"
    "{%- endfor %}<|im_end|>\n"
    "{% elif m.role == 'tool' %}"
    "{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}<|im_start|>user{%- endif %}"
    "\n<tool_response>\n{{ m.content }}\n</tool_response>"
    "{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}<|im_end|>\n{% endif %}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

CORPUS = [
    "<|im_start|>system\nYou are a coding agent. Use the tools.<|im_end|>\n",
    "<|im_start|>user\nWrite the number 42 into answer.txt in the working directory.<|im_end|>\n",
    "<|im_start|>assistant\nI will write the file.\n<tool_call>\n<function=Bash>\n<parameter=command>\n"
    "echo 42 > answer.txt\n</parameter>\n</function>\n</tool_call><|im_end|>\n",
    '<tool_call>\n{"name": "bash", "arguments": {"command": "ls -la"}}\n</tool_call>',
    "<tool_response>\nexit code 0\n</tool_response> The file is written. Done.",
    "def main():\n    return 0\n# Tools\n<tools><function><name>Read</name><description>Read a file</description>",
] * 20


def build_tokenizer(directory: Path) -> PreTrainedTokenizerFast:
    """Train (about a second), save to `directory` and load it back as Hugging Face tokenizer."""
    if not (directory / "tokenizer.json").exists():
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=800, special_tokens=SPECIAL + ADDED,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(CORPUS, trainer)
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                       additional_special_tokens=ADDED)
        fast.chat_template = CHAT_TEMPLATE
        fast.save_pretrained(directory)
    return PreTrainedTokenizerFast.from_pretrained(directory)


TEMPLATES = Path(__file__).resolve().parent / "templates"


def with_template(tokenizer: PreTrainedTokenizerFast, name: str, directory: Path | None = None,
                  generation_eos: list[str] | None = None) -> PreTrainedTokenizerFast:
    """The fixture tokenizer with the test chat template `templates/<name>.jinja`; with `generation_eos`, a copy
    in `directory` whose generation_config.json lists those tokens as EOS (as Qwen's models list several)."""
    source = Path(tokenizer.name_or_path)
    if generation_eos:
        shutil.copytree(source, directory, dirs_exist_ok=True)
        ids = [tokenizer.convert_tokens_to_ids(t) for t in generation_eos]
        (directory / "generation_config.json").write_text(f'{{"eos_token_id": {ids}}}')
        source = directory
    tok = PreTrainedTokenizerFast.from_pretrained(source)
    tok.chat_template = (TEMPLATES / f"{name}.jinja").read_text()
    return tok


class Recording:
    """Wraps a tokenizer and records what the session renders and on which threads it renders and tokenises."""

    def __init__(self, tokenizer: Any):
        self._tok = tokenizer
        self.rendered: list[list[dict]] = []
        self.threads: set[int] = set()
        self.render_threads: list[int] = []  # per entry of `rendered`, the thread that rendered it

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tok, name)

    def apply_chat_template(self, messages, **kwargs):
        self.rendered.append([dict(m) for m in messages])
        self.render_threads.append(threading.get_ident())
        self.threads.add(threading.get_ident())
        return self._tok.apply_chat_template(messages, **kwargs)

    def encode(self, text, **kwargs):
        self.threads.add(threading.get_ident())
        return self._tok.encode(text, **kwargs)
