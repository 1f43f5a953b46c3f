"""The model classes of an exported folder: a BERT-family encoder (mask baked in) plus the layer-mix head.

`prune-cli export` copies this file into the folder as `modeling_pruned_bert.py` (and
`prune_cli/head.py` as `layer_mix_head.py`, rewriting the one import below), so that plain
transformers loads the result with

    AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)

and nothing from prune-cli installed. The classes only depend on transformers and torch. Each
keeps its encoder under its architecture's own prefix (`bert.`, `roberta.`, `electra.`, `albert.`), so the
folder also loads as a plain `AutoModel` of that architecture (the head's weights then ignored).
"""

from __future__ import annotations

from torch import nn
from transformers import (AlbertModel, AlbertPreTrainedModel, BertModel, BertPreTrainedModel, CamembertModel, CamembertPreTrainedModel,
                          ElectraModel, ElectraPreTrainedModel, RobertaModel, RobertaPreTrainedModel, XLMRobertaModel,
                          XLMRobertaPreTrainedModel)
from transformers.modeling_outputs import SequenceClassifierOutput

from prune_cli.head import LayerMixHead  # export rewrites this to: from .layer_mix_head import LayerMixHead


class LayerMixClassification:
    """The encoder's [CLS] (or mean) vector at every layer, mixed by learned softmax weights, then an
    MLP. Mixed into an architecture's PreTrainedModel, whose `base_model_prefix` (bert, roberta,
    electra) names the attribute the encoder (`encoder_class`) is kept under."""

    encoder_class: type
    encoder_options: dict = {"add_pooling_layer": False}  # the head reads the hidden states, never a pooler

    def __init__(self, config):
        super().__init__(config)
        setattr(self, self.base_model_prefix, self.encoder_class(config, **self.encoder_options))
        self.num_labels = config.num_labels
        self.head = LayerMixHead(config.hidden_size, config.num_hidden_layers + 1, config.num_labels,
                                 pooling=getattr(config, "prune_cli_pooling", "cls"))
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs) -> SequenceClassifierOutput:
        out = self.base_model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, output_hidden_states=True)
        logits = self.head(out.hidden_states, attention_mask)
        loss = None
        if labels is not None:
            if self.num_labels == 1:
                loss = nn.functional.mse_loss(logits.squeeze(-1).float(), labels.float())
            else:
                loss = nn.functional.cross_entropy(logits.float(), labels.view(-1))
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states)


class PrunedBertForSequenceClassification(LayerMixClassification, BertPreTrainedModel):
    """A BERT encoder (under `bert.`) and the layer-mix head."""

    encoder_class = BertModel


class PrunedRobertaForSequenceClassification(LayerMixClassification, RobertaPreTrainedModel):
    """A RoBERTa encoder (under `roberta.`) and the layer-mix head."""

    encoder_class = RobertaModel


class PrunedXLMRobertaForSequenceClassification(LayerMixClassification, XLMRobertaPreTrainedModel):
    """An XLM-RoBERTa encoder (under `roberta.`) and the layer-mix head."""

    encoder_class = XLMRobertaModel


class PrunedCamembertForSequenceClassification(LayerMixClassification, CamembertPreTrainedModel):
    """A CamemBERT encoder (under `roberta.`) and the layer-mix head."""

    encoder_class = CamembertModel


class PrunedElectraForSequenceClassification(LayerMixClassification, ElectraPreTrainedModel):
    """An ELECTRA discriminator's encoder (under `electra.`; it has no pooler) and the layer-mix head."""

    encoder_class = ElectraModel
    encoder_options: dict = {}


class PrunedAlbertForSequenceClassification(LayerMixClassification, AlbertPreTrainedModel):
    """An ALBERT encoder (under `albert.`) and the layer-mix head. ALBERT runs one layer's weights at
    every depth, so the mask on them, learnt once, is baked in once; its hidden states are still
    one per depth, as the head mixes them."""

    encoder_class = AlbertModel


# The class an exported folder of each base architecture (its config's model_type) is loaded as.
EXPORTED = {"bert": PrunedBertForSequenceClassification, "roberta": PrunedRobertaForSequenceClassification,
            "xlm-roberta": PrunedXLMRobertaForSequenceClassification, "camembert": PrunedCamembertForSequenceClassification,
            "electra": PrunedElectraForSequenceClassification, "albert": PrunedAlbertForSequenceClassification}
