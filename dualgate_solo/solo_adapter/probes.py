"""Online linear probe and k-NN for every network a method trains (solo-learn 1.0.6 conventions).

solo-learn's ``BaseMethod`` has one online ``classifier`` and one ``knn``, fed the backbone's
features. A method of this package trains several networks over shared weights (the dense and
gated branches, or the widths of a slimmable network). :class:`OnlineProbes` gives each a probe:
the primary network uses solo-learn's own (so it logs the usual ``val_acc1``/``val_knn_acc1``),
every other one a private head logged as ``val_<network>_acc1``/``val_<network>_knn_acc1``.

Imports solo-learn at module level: import it only through
:func:`dualgate_solo.solo_adapter.register`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from solo.utils.knn import WeightedKNNClassifier
from solo.utils.metrics import accuracy_at_k, weighted_mean
from torch import Tensor, nn


def _key(network: str) -> str:
    """A ``ModuleDict`` key for ``network`` (no dots: ``w0.5`` -> ``w0_5``)."""
    return network.replace(".", "_")


class OnlineProbes:
    """Mixin for a solo-learn ``BaseMethod``: per-network online probes.

    Call :meth:`init_probes` in ``__init__`` after ``BaseMethod.__init__``.
    """

    def init_probes(self, cfg: Any, networks: list[str], features: dict[str, int]) -> None:
        """``networks`` primary first; ``features[n]``: the feature width of network ``n``."""
        self.networks = list(networks)
        extra = self.networks[1:]
        self.extra_classifiers = nn.ModuleDict(
            {_key(n): nn.Linear(features[n], self.num_classes) for n in extra}
        )
        self.extra_knns = nn.ModuleDict(
            {
                _key(n): WeightedKNNClassifier(k=self.knn_k, distance_fx=cfg.knn_eval.distance_func)
                for n in extra
            }
            if self.knn_eval
            else {}
        )

    def classifier_for(self, network: str) -> nn.Module:
        """The online linear probe of ``network`` (solo-learn's ``classifier`` for the primary)."""
        return (
            self.classifier
            if network == self.networks[0]
            else self.extra_classifiers[_key(network)]
        )

    def knn_for(self, network: str) -> WeightedKNNClassifier | None:
        """The online k-NN of ``network`` (``None`` when ``knn_eval.enabled`` is off)."""
        if not self.knn_eval:
            return None
        return self.knn if network == self.networks[0] else self.extra_knns[_key(network)]

    def metric_prefix(self, network: str) -> str:
        """``""`` for the primary network (solo-learn's keys), ``"<network>_"`` otherwise."""
        return "" if network == self.networks[0] else f"{network}_"

    def probe_param_groups(self) -> list[dict[str, Any]]:
        """Optimizer groups of the extra heads (solo-learn's classifier lr, no weight decay)."""
        return [
            {
                "name": f"{key}_classifier",
                "params": head.parameters(),
                "lr": self.classifier_lr,
                "weight_decay": 0,
            }
            for key, head in self.extra_classifiers.items()
        ]

    def probe(self, network: str, feats: Tensor, targets: Tensor) -> dict[str, Tensor]:
        """Cross-entropy and top-1/5 of ``network``'s probe on detached ``feats [B, F]``."""
        logits = self.classifier_for(network)(feats.detach())
        loss = F.cross_entropy(logits, targets, ignore_index=-1)
        acc1, acc5 = accuracy_at_k(logits, targets, top_k=(1, min(5, logits.size(1))))
        return {"loss": loss, "acc1": acc1, "acc5": acc5}

    def train_probes(
        self, feats: dict[str, Tensor], targets: Tensor, log: dict[str, Any]
    ) -> Tensor | float:
        """Probe losses of a training step (one view's ``feats`` per network); fills ``log``
        (``train_[<network>_]class_loss/acc1/acc5``) and feeds each k-NN's training memory."""
        class_loss: Tensor | float = 0.0
        mask = targets != -1
        for network, f in feats.items():
            result = self.probe(network, f, targets)
            class_loss = class_loss + result["loss"]
            prefix = f"train_{self.metric_prefix(network)}"
            log.update({f"{prefix}class_{k}" if k == "loss" else f"{prefix}{k}": v
                        for k, v in result.items()})  # fmt: skip
            knn = self.knn_for(network)
            if knn is not None:
                knn(train_features=f.detach()[mask], train_targets=targets[mask])
        return class_loss

    def validate_network(
        self, network: str, feats: Tensor, targets: Tensor, metrics: dict[str, Any]
    ) -> None:
        """Validation probe of ``network`` into ``metrics``; feeds its k-NN's test memory."""
        result = self.probe(network, feats, targets)
        prefix = f"val_{self.metric_prefix(network)}"
        metrics.update({f"{prefix}{k}": v for k, v in result.items()})
        knn = self.knn_for(network)
        if knn is not None and not self.trainer.sanity_checking:
            knn(test_features=feats.detach(), test_targets=targets.detach())

    def validated_networks(self) -> list[str]:
        """The networks validated at the current epoch: every one that has trained (all of
        them unless a method overrides this, as SlimCLR's slow start does)."""
        return self.networks

    def layout(self, X: Tensor) -> Tensor:
        """``X`` in the memory format solo-learn's ``performance.disable_channel_last`` asks for."""
        return X if self.no_channel_last else X.to(memory_format=torch.channels_last)

    def validate_one(
        self, X: Tensor, network: str, targets: Tensor, metrics: dict[str, Any]
    ) -> None:
        """One network's validation metrics on ``X`` into ``metrics`` (via
        :meth:`validate_network`); the method's class implements it."""
        raise NotImplementedError

    def validation_step(
        self,
        batch: list[Tensor],
        batch_idx: int,
        dataloader_idx: int | None = None,
        update_validation_step_outputs: bool = True,
    ) -> dict[str, Any]:
        """Every network of :meth:`validated_networks` on ``batch = (X, targets)``
        (:meth:`validate_one`)."""
        X, targets = batch
        X = self.layout(X)
        metrics: dict[str, Any] = {"batch_size": targets.size(0)}
        for network in self.validated_networks():
            self.validate_one(X, network, targets, metrics)
        if update_validation_step_outputs:
            self.validation_step_outputs.append(metrics)
        return metrics

    def on_validation_epoch_end(self) -> None:
        """Batch-size-weighted means of the validation metrics and each validated network's
        k-NN (a network that has not trained yet logs nothing, rather than solo-learn's ``-1``
        placeholder of a k-NN without training features)."""
        outputs = self.validation_step_outputs
        keys = [k for k in outputs[0] if k != "batch_size"] if outputs else []
        log = {k: weighted_mean(outputs, k, "batch_size") for k in keys}
        if "val_flops_ratio" in log:
            log["val_flops_reduction"] = 1.0 - log["val_flops_ratio"]
        if not self.trainer.sanity_checking:
            for network in self.validated_networks():
                knn = self.knn_for(network)
                if knn is not None:
                    acc1, acc5 = knn.compute()
                    prefix = f"val_{self.metric_prefix(network)}"
                    log.update({f"{prefix}knn_acc1": acc1, f"{prefix}knn_acc5": acc5})
        self.log_dict(log, sync_dist=True)
        outputs.clear()
