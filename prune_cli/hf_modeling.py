"""The model class of an exported folder: a BERT encoder (mask baked in) plus the layer-mix head.

`prune-cli export` copies this file into the folder as `modeling_pruned_bert.py` (and
`prune_cli/head.py` as `layer_mix_head.py`, rewriting the one import below), so that plain
transformers loads the result with

    AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)

and nothing from prune-cli installed. The class only depends on transformers and torch.
"""

from __future__ import annotations

from torch import nn
from transformers import BertModel, BertPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from prune_cli.head import LayerMixHead  # export rewrites this to: from .layer_mix_head import LayerMixHead


class PrunedBertForSequenceClassification(BertPreTrainedModel):
    """The encoder's [CLS] (or mean) vector at every layer, mixed by learned softmax weights, then an MLP."""

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.head = LayerMixHead(config.hidden_size, config.num_hidden_layers + 1, config.num_labels,
                                 pooling=getattr(config, "prune_cli_pooling", "cls"))
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs) -> SequenceClassifierOutput:
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, output_hidden_states=True)
        logits = self.head(out.hidden_states, attention_mask)
        loss = None
        if labels is not None:
            if self.num_labels == 1:
                loss = nn.functional.mse_loss(logits.squeeze(-1).float(), labels.float())
            else:
                loss = nn.functional.cross_entropy(logits.float(), labels.view(-1))
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states)
