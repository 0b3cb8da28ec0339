"""GPT-2 fine-tuned on the 20 fictional "Dave" sentences of paper 000 (Table 6), forgetting one of them.

``dave`` loads any causal LM by name or local path with transformers ``from_pretrained`` (GPT-2 by
default; needs the model files or internet). ``dave-tiny`` trains a small GPT-2 configuration from
scratch with a byte-level BPE tokenizer trained on the task's own text, offline and in seconds on CPU.
``dave-small`` fine-tunes a small GPT-2 pretrained here on standard-library docstrings (``tasks.language.pretrain``,
cached by content), the offline stand-in for the paper's pretrained GPT-2.
The general sentences of Table 7 are the validation set. ``dataset=names`` trains on paper 000's Name dataset
(``tasks.language.names``: every Table 6 fact about each of its 20 names) and forgets every sentence about ``forget_name``.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cached_property
from importlib.resources import files
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from bench.bounds import Epochs, Range, StepSize, TrainBatch
from bench.errors import BenchError, ParamError
from oracles.recorded import GradientRecorder
from bench.metrics.declared import ReportColumn
from bench.registry import register_task
from bench.seeding import seeded_init
from bench.task import Split, StepHook, Task, TaskData
from tasks.language.names import indices_about, name_dataset, names_of

EOS = "<|endoftext|>"


def read_sentences(name: str) -> list[str]:
    """One sentence per line from the package's data folder."""
    text = files("tasks.language").joinpath("data", f"{name}.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def closest_sentence(text: str, sentences: list[str]) -> int:
    """Index of the training sentence most similar to ``text`` (difflib ratio, as in paper 000 section 3.6.4)."""
    scores = [difflib.SequenceMatcher(None, text, s).ratio() for s in sentences]
    return int(np.argmax(scores))


@register_task
@dataclass(kw_only=True)
class Dave(Task):
    """GPT-2 (any from_pretrained name or path) fine-tuned on paper 000's 20 "Dave" sentences; forget one."""

    name = "dave"
    forget_params = ("target", "target_mode")  # they only choose the forget set
    version = "1"
    default_lr = 1e-4
    default_batch_size = None  # the whole forget/retain set per step: it is at most 20 sentences
    forget_size: ClassVar[int] = 1
    curve_every: ClassVar[int] = 2
    supports_datamodels: ClassVar[bool] = False
    #: perplexity, ROUGE on the forget text and self-influence after unlearning, from ``report``
    report_columns: ClassVar[tuple[ReportColumn, ...]] = (
        ReportColumn("lm.perplexity.{name}", "perplexity {name} (after unlearning)",
                     ("task_report", "perplexity", "after_unlearning", "*"), metric="perplexity"),
        ReportColumn("lm.rouge.{name}", "{name} forget text (after unlearning)",
                     ("task_report", "rouge", "after_unlearning", "forget", "*")),
        ReportColumn("lm.influence", "self-influence (after unlearning)",
                     ("task_report", "influence", "after_unlearning"), metric="self_influence"),
    )

    model: str = "gpt2"
    target: str = "Dave is working on building a custom guitar."
    target_mode: Literal["exact", "fuzzy"] = "exact"
    epochs: Epochs = 15
    lr: StepSize = 2e-5  # Adam, batch size 1, as in the paper's section 3.6.2
    batch_size: TrainBatch = 1
    max_length: Annotated[int, Range(3, 8192)] = 128  # tokens per sentence, with its two end-of-text markers
    dataset: Literal["dave", "names"] = "dave"  # names: paper 000's Name dataset (400 sentences, tasks.language.names)
    forget_name: str = "Dave"  # dataset=names: forget every sentence about this name
    # paper: eqs. 3-4 as printed (tasks.language.metrics); dattri-lissa, ekfac: library estimators (tasks.language.influence_libs)
    influence_estimator: Literal["lissa", "paper", "dattri-lissa", "ekfac"] = "lissa"

    # -- checkpoint identity ---------------------------------------------------------------------------
    @cached_property
    def checkpoint_fingerprint(self) -> str:
        """What the weights and tokenizer loaded from ``model`` are, by content: a local folder (or file) is
        fingerprinted by its files (``bench.fingerprint``), a hub name by the files of its downloaded snapshot.
        It enters the training recipe, hence every cache key and record, so replacing the checkpoint at the same
        path can never reuse models fine-tuned from the old one. Computed once per task object."""
        from bench.fingerprint import fingerprint
        path = Path(self.model).expanduser()
        if path.exists():
            return f"files:{fingerprint([path])}"
        try:
            from huggingface_hub import snapshot_download
            folder = snapshot_download(self.model, local_files_only=True)
        except Exception:  # not downloaded yet (or no hub client): the name is all there is
            return f"hub:{self.model} (not in the local hub cache)"
        return f"hub:{self.model}@{Path(folder).name}:{fingerprint([Path(folder)])}"

    def validate(self, label: str | None = None) -> None:
        """Bounds, and a library estimator's library installed (exit 2 with the pip command before training)."""
        super().validate(label)
        if self.influence_estimator in ("dattri-lissa", "ekfac"):
            from tasks.language.influence_libs import require_library
            require_library(self.influence_estimator)

    # -- model and tokenizer -------------------------------------------------------------------------
    @cached_property
    def tokenizer(self):
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(self.model)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        return tok

    @cached_property
    def _pretrained_state(self) -> dict[str, torch.Tensor]:
        from transformers import AutoModelForCausalLM
        try:
            model = AutoModelForCausalLM.from_pretrained(self.model)
        except OSError as err:
            raise BenchError(f"cannot load model {self.model!r}: {err}\nGive a local folder saved with "
                             "save_pretrained, or use the offline task dave-tiny") from None
        self._config = model.config
        return {k: v.detach().clone() for k, v in model.state_dict().items()}

    def make_model(self, seed: int) -> nn.Module:
        from transformers import AutoModelForCausalLM
        state = self._pretrained_state
        # eager attention: influence scores need double backward, which fused CPU attention lacks
        model = AutoModelForCausalLM.from_config(self._config, attn_implementation="eager")
        model.load_state_dict(state, strict=False)
        model.tie_weights()
        return model.eval()

    # -- data ----------------------------------------------------------------------------------------
    def encode(self, sentences: list[str]) -> Split:
        """[eos] + tokens + [eos], right-padded; y is the attention mask (pads are never predicted)."""
        tok = self.tokenizer
        tokens = [tok(s)["input_ids"] for s in sentences]
        empty = [s for s, t in zip(sentences, tokens) if not t]
        if empty:  # an empty sequence has perplexity 1: it would score as perfect unlearning
            raise BenchError(f"the tokenizer of model {self.model!r} produced no tokens for {len(empty)} of "
                             f"{len(sentences)} sentences (e.g. {empty[0]!r}); use a tokenizer that covers the text")
        rows = [[tok.eos_token_id, *t[: self.max_length - 2], tok.eos_token_id] for t in tokens]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        return Split(ids, mask)

    @cached_property
    def sentences(self) -> dict[str, list[str]]:
        table6 = read_sentences("dave_sentences")
        train = name_dataset(table6) if self.dataset == "names" else table6
        return {"train": train, "val": read_sentences("general_sentences")}

    def load(self) -> tuple[Split, Split]:
        return self.encode(self.sentences["train"]), self.encode(self.sentences["val"])

    def select_forget(self, train: Split, rng: np.random.Generator) -> np.ndarray:
        """The target sentence: matched exactly, or the closest training sentence to the given text. With the Name
        dataset: every sentence about ``forget_name``."""
        sentences = self.sentences["train"]
        if self.dataset == "names":
            chosen = indices_about(sentences, self.forget_name)
            if not chosen:
                names = names_of(sentences)
                close = difflib.get_close_matches(self.forget_name, names, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise BenchError(f"forget_name {self.forget_name!r} is not a name of the Name dataset.{hint} "
                                 f"Names: {', '.join(names)}")
            return np.array(chosen)
        if self.target_mode == "fuzzy":
            return np.array([closest_sentence(self.target, sentences)])
        if self.target not in sentences:
            close = difflib.get_close_matches(self.target, sentences, n=1, cutoff=0.3)
            hint = f" Did you mean {close[0]!r}? (or use --task-arg target_mode=fuzzy)" if close else ""
            raise BenchError(f"target {self.target!r} is not one of the Dave sentences.{hint}")
        return np.array([sentences.index(self.target)])

    # -- training and statistics ---------------------------------------------------------------------
    def train(self, model: nn.Module, data: Split, seed: int, *, max_steps: int | None = None,
              on_step: StepHook | None = None, recorder: GradientRecorder | None = None) -> nn.Module:
        """Adam with batch size 1 (the paper's recipe); optionally records chosen examples' gradients."""
        device = next(model.parameters()).device
        optimizer = torch.optim.Adam(model.parameters(), lr=self.lr)
        gen = torch.Generator().manual_seed(seed)
        step = 0
        model.train()
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)  # dropout
            for epoch in range(self.epochs):
                for batch in torch.randperm(len(data), generator=gen).split(self.batch_size):
                    if max_steps is not None and step >= max_steps:
                        return model.eval()
                    losses = self.loss(model, data.x[batch.to(device)], data.y[batch.to(device)])
                    if recorder is not None:
                        recorder.observe(model, losses, batch.tolist(), epoch)
                    optimizer.zero_grad(set_to_none=True)
                    losses.mean().backward()
                    optimizer.step()
                    step += 1
                    if on_step is not None:
                        on_step(model)
        return model.eval()

    def train_recording(self, model: nn.Module, data: Split, seed: int, recorder: GradientRecorder) -> nn.Module:
        return self.train(model, data, seed, recorder=recorder)

    def training_recipe(self) -> dict:
        return {"optimizer": "adam", "lr": self.lr, "epochs": self.epochs, "batch_size": self.batch_size,
                "checkpoint": self.checkpoint_fingerprint}

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from tasks.language.metrics import sequence_nll
        return sequence_nll(model, x, y)

    def outputs(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return model(input_ids=x).logits  # right padding + causal attention: real tokens never see pads

    def margin(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean over predicted tokens of (correct logit - logsumexp of the other logits)."""
        from tasks.language.metrics import token_log_margins
        return token_log_margins(model, x, y)

    def challenge_statistic(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return self.margin(model, x, y).float().cpu().numpy()

    def evaluate(self, model: nn.Module, split: Split) -> dict[str, float]:
        from tasks.language.metrics import perplexity
        with torch.no_grad():
            return {"perplexity": perplexity(model, split.x, split.y),
                    "loss": float(self.loss(model, split.x, split.y).mean())}

    # -- paper 000's evaluation ------------------------------------------------------------------------
    def text_splits(self, data: TaskData) -> dict[str, list[str]]:
        train = self.sentences["train"]
        forget = set(int(i) for i in data.forget_idx)
        return {"forget": [train[i] for i in sorted(forget)],
                "retain": [s for i, s in enumerate(train) if i not in forget],
                "general": self.sentences["val"]}

    def curve_point(self, model: nn.Module, data: TaskData) -> dict[str, float]:
        """Perplexities and the forget sentence's ROUGE-L, tracked during unlearning."""
        from tasks.language.metrics import generation_rouge, perplexity
        texts = self.text_splits(data)
        point = {f"perplexity_{name}": perplexity(model, split.x, split.y)
                 for name, split in (("forget", data.forget), ("retain", data.retain), ("general", data.val))}
        point["rougeL_forget"] = generation_rouge(model, self.tokenizer, texts["forget"],
                                                  prefix=self.tokenizer.eos_token)[0]["rougeL"]
        return point

    def influence(self, model: nn.Module, data: TaskData) -> float:
        """Self-influence of the forget sentence (section 3.6.3): -grad L_s . (H + dsI)^-1 grad L_s, with the
        Hessian of the training loss over all Dave sentences, on the embedding parameters (as in section 4.3)."""
        from tasks.language.metrics import influence_score
        names = set(self.layer_groups(model)["embedding"])
        params = [p for n, p in model.named_parameters() if n in names]
        if self.influence_estimator in ("dattri-lissa", "ekfac"):
            from tasks.language import influence_libs as libs
            if self.influence_estimator == "ekfac":  # the blocks' linear layers: kronfluence cannot track embeddings
                return libs.ekfac_self_influence(model, (data.train.x, data.train.y), (data.forget.x, data.forget.y),
                                                 damping=0.01 * 25.0)
            return libs.dattri_influence(model, [n for n, _ in model.named_parameters() if n in names],
                                         lambda m: self.loss(m, data.forget.x, data.forget.y).mean(),
                                         lambda m: self.loss(m, data.forget.x, data.forget.y).mean(),
                                         lambda m: self.loss(m, data.train.x, data.train.y).mean(),
                                         damping=0.01, scale=25.0, iterations=50)
        forget_loss = lambda: self.loss(model, data.forget.x, data.forget.y).mean()  # noqa: E731
        train_loss = lambda: self.loss(model, data.train.x, data.train.y).mean()  # noqa: E731
        return influence_score(model, forget_loss, forget_loss, params, hessian_loss_fn=train_loss,
                               damping=0.01, scale=25.0, iterations=50, estimator=self.influence_estimator)

    def report(self, initial: nn.Module, original: nn.Module, unlearned: nn.Module, data: TaskData,
               recorded: dict[str, torch.Tensor] | None) -> dict:
        """Perplexity, ROUGE and influence before fine-tuning, after it and after unlearning; generated texts."""
        from tasks.language.metrics import activation_gradient_influence, generation_rouge, perplexity
        from oracles.recorded import totals_from_flat
        texts = self.text_splits(data)
        splits = {"forget": data.forget, "retain": data.retain, "general": data.val}
        stages = {"before_finetuning": initial, "after_finetuning": original, "after_unlearning": unlearned}
        out: dict = {"perplexity": {}, "rouge": {}, "generations": {}, "influence": {}}
        for stage, model in stages.items():
            out["perplexity"][stage] = {n: perplexity(model, s.x, s.y) for n, s in splits.items()}
            out["rouge"][stage], out["generations"][stage] = {}, {}
            for name, sentences in texts.items():
                # training rows start with the end-of-text token, so prompts do too
                scores, generated = generation_rouge(model, self.tokenizer, sentences, prefix=self.tokenizer.eos_token)
                out["rouge"][stage][name] = scores
                out["generations"][stage][name] = generated
            out["influence"][stage] = self.influence(model, data)
        if recorded is not None:
            embedding = self.layer_groups(unlearned)["embedding"][0]
            gradient = totals_from_flat(recorded, "all-epochs").get(embedding)
            if gradient is not None:
                gen_ids = self.encode(out["generations"]["after_finetuning"]["forget"])
                out["activation_gradient_influence"] = {
                    stage: activation_gradient_influence(model, gen_ids.x.to(gradient.device),
                                                         gen_ids.y.to(gradient.device), gradient)
                    for stage, model in (("after_finetuning", original), ("after_unlearning", unlearned))}
        out["texts"] = texts
        return out

    def layer_groups(self, model: nn.Module) -> dict[str, list[str]]:
        """Paper 000's layer numbering: 0 is the embedding, 1..L the transformer blocks, then the final norm."""
        groups: dict[str, list[str]] = {"embedding": [], "final": []}
        blocks: dict[int, list[str]] = {}
        for name, _ in model.named_parameters():
            parts = name.split(".")
            if "h" in parts and parts[parts.index("h") + 1].isdigit():
                blocks.setdefault(int(parts[parts.index("h") + 1]), []).append(name)
            elif "wte" in parts or "wpe" in parts:
                groups["embedding"].append(name)
            else:
                groups["final"].append(name)
        ordered = {"embedding": groups["embedding"]}
        ordered.update({f"block.{i + 1}": blocks[i] for i in sorted(blocks)})
        ordered["final"] = groups["final"]
        return ordered


@register_task
@dataclass(kw_only=True)
class DaveTiny(Dave):
    """A small GPT-2 trained from scratch on the Dave sentences with its own BPE tokenizer (offline, CPU)."""

    name = "dave-tiny"
    version = "1"
    default_lr = 1e-3

    model: str = "tiny"  # "tiny": built here; anything else is loaded with from_pretrained, as for dave
    n_layer: Annotated[int, Range(1, 256)] = 4
    n_embd: Annotated[int, Range(4, 16384)] = 64  # split over 4 attention heads: a multiple of 4
    vocab_size: Annotated[int, Range(1, 1_000_000)] = 400  # byte-level BPE: never fewer than its 257 base tokens
    epochs: Epochs = 40
    lr: StepSize = 3e-3
    batch_size: TrainBatch = 4

    def validate(self, label: str | None = None) -> None:
        super().validate(label)
        if self.model == "tiny" and self.n_embd % 4:
            raise ParamError(f"{label or f'task {self.name!r}'} parameter 'n_embd' must be a multiple of 4 (the "
                             f"model has 4 attention heads), got {self.n_embd}; give e.g. n_embd={self.n_embd // 4 * 4 or 4}")

    @cached_property
    def checkpoint_fingerprint(self) -> str:
        """Built here from the task's parameters (already in every key), or a loaded checkpoint's content."""
        return "built here" if self.model == "tiny" else super().checkpoint_fingerprint

    @cached_property
    def tokenizer(self):
        if self.model != "tiny":
            return super().tokenizer
        from tokenizers import ByteLevelBPETokenizer
        from transformers import PreTrainedTokenizerFast
        bpe = ByteLevelBPETokenizer()
        text = self.sentences["train"] + self.sentences["val"]
        bpe.train_from_iterator(text, vocab_size=self.vocab_size, min_frequency=1, special_tokens=[EOS],
                                show_progress=False)
        return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token=EOS, pad_token=EOS)

    def make_model(self, seed: int) -> nn.Module:
        if self.model != "tiny":
            return super().make_model(seed)
        from transformers import GPT2Config, GPT2LMHeadModel
        config = GPT2Config(vocab_size=len(self.tokenizer), n_positions=2 * self.max_length, n_embd=self.n_embd,
                            n_layer=self.n_layer, n_head=4, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                            bos_token_id=self.tokenizer.eos_token_id, eos_token_id=self.tokenizer.eos_token_id)
        config._attn_implementation = "eager"  # influence scores need double backward
        with seeded_init(seed):
            return GPT2LMHeadModel(config).eval()
