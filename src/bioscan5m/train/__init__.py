"""The one training engine (``engine``) and one step per objective: MLM (``pretrain``), classification
(``classification``), CLIBD contrastive alignment (``contrastive_step``, its loss in ``contrastive``)."""
