"""Language-model tasks (paper 000's Dave on GPT-2) with their metrics, corpora, pretraining and reproductions."""
from bench.catalog import register_reproduction
from tasks.language import dave, dave_small  # noqa: F401  (registers dave, dave-small, dave-tiny)
from tasks.language import metrics  # noqa: F401  (declares perplexity, ROUGE, self-influence)

for _name, _function in [("dave-layers", "reproduce_layers"), ("dave-epochs", "reproduce_epochs"),
                         ("dave-layers-scratch", "reproduce_layers_scratch"),
                         ("dave-epochs-scratch", "reproduce_epochs_scratch")]:
    register_reproduction(_name, f"tasks.language.reproduce.dave:{_function}")
