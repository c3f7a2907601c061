"""The multi-task network: one MiniLM encoder pass, a linear head per task.

Pooling is the mean over content tokens ([CLS] and [SEP] excluded), and every
head is linear on that mean, so each head's logit is exactly the sum over
content tokens of (h_t . w) / n plus the bias. ``forward`` returns those
per-token terms, which makes the explanation exact and nearly free.
"""

from __future__ import annotations

import torch
from data import HEADS
from torch import nn
from transformers import AutoModel


def content_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """The attention mask without the first ([CLS]) and last real ([SEP]) token."""
    mask = attention_mask.clone()
    mask[:, 0] = 0
    last = attention_mask.sum(dim=1, keepdim=True) - 1
    positions = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0)
    return mask * (positions != last).to(mask.dtype)


def layers_in(state: dict[str, torch.Tensor]) -> int:
    """How many transformer layers a checkpoint's encoder has (a distilled student has fewer)."""
    prefix = "encoder.encoder.layer."
    return 1 + max(int(key[len(prefix) :].split(".", 1)[0]) for key in state if key.startswith(prefix))


class MultiTaskModel(nn.Module):
    def __init__(self, encoder_dir: str, layers: list[int] | None = None) -> None:
        """``layers``: keep only these layers of the encoder, in order (a student's starting point)."""
        super().__init__()
        self.encoder = AutoModel.from_pretrained(encoder_dir)
        if layers is not None:
            self.encoder.encoder.layer = nn.ModuleList([self.encoder.encoder.layer[i] for i in layers])
            self.encoder.config.num_hidden_layers = len(layers)
        hidden = self.encoder.config.hidden_size
        self.head_sizes = [len(labels) for labels in HEADS.values()]
        # All heads in one matrix, in HEADS order: one matmul serves every head.
        self.heads = nn.Linear(hidden, sum(self.head_sizes))

    def pooled(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(last hidden states, content mask, content count, mean over content tokens)."""
        hidden, mask, count, mean, _ = self.pooled_layers(input_ids, attention_mask)
        return hidden, mask, count, mean

    def pooled_layers(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, every_layer: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """(last hidden states, content mask, content count, mean) and, with ``every_layer``,
        the hidden states after the embeddings and after each layer (for distillation)."""
        token_type_ids = torch.zeros_like(input_ids)
        out = self.encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            output_hidden_states=every_layer,
        )
        hidden = out.last_hidden_state
        mask = content_mask(attention_mask).unsqueeze(-1).to(hidden.dtype)
        count = mask.sum(dim=1).clamp(min=1.0)
        mean = (hidden * mask).sum(dim=1) / count
        return hidden, mask, count, mean, out.hidden_states if every_layer else None

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits [B, C], token contributions [B, T, C], embedding [B, H])."""
        hidden, mask, count, mean = self.pooled(input_ids, attention_mask)
        tokens = (hidden @ self.heads.weight.T) * mask / count.unsqueeze(1)
        logits = tokens.sum(dim=1) + self.heads.bias
        embedding = nn.functional.normalize(mean, dim=-1)
        return logits, tokens, embedding

    def head_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits only, for training (skips the per-token terms)."""
        *_, mean = self.pooled(input_ids, attention_mask)
        return self.heads(mean)
