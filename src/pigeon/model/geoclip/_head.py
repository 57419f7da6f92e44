"""A head stage made of a GeoCLIP gallery: cell probabilities as the gallery posterior summed over each cell.

A model without a trained geocell classifier (GeoCLIP's published one) still answers like every pigeon model: its
cells (built over the gallery) get the posterior mass of their points, so the ``cell`` method, probability maps,
evaluation and the service work unchanged, and the ``geoclip`` method places the guess on the gallery points.
"""

from __future__ import annotations

import torch
from torch import nn

from pigeon.model.layers import HeadConfig

#: The ``kind`` of this head in a model's ``config.json`` ``"head"`` entry.
KIND = "geoclip"


class GalleryHead(nn.Module):
    """``forward(x) -> {"geocell": log P(cell)}`` (N, C) from a :class:`GeoClip`'s gallery softmax.

    The log-probabilities are logits whose softmax is the cell mass itself. It has no auxiliary heads, and nothing
    of its own to save: the model folder's ``geoclip/`` holds the towers and the gallery.
    """

    climate = month = regression = None

    def __init__(self, geoclip, n_cells: int) -> None:
        super().__init__()
        self.cfg = HeadConfig(in_dim=geoclip.in_dim, n_cells=n_cells)
        self.geoclip = geoclip
        self.towers = geoclip.towers  # a submodule, so that .to(device) and .eval() reach the towers

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mass = self.geoclip.cell_probs(x.detach().cpu().numpy(), self.cfg.n_cells)
        return {"geocell": torch.log(mass.clamp_min(1e-30)).to(x.device)}

    def config_entry(self) -> dict:
        """What ``config.json`` records for this head."""
        return {"kind": KIND, **self.cfg.to_dict()}

    def check_backbone(self, backbone):
        """The backbone to use instead of the model's: GeoCLIP's published towers need CLIP ViT-L/14's image
        features (``clip:DIR`` means ``clip_image:DIR``); anything else is a one-line error naming it."""
        if not isinstance(self.geoclip.config.get("weights"), dict):
            return backbone  # towers trained by pigeon: the model checks the embedding size
        from pigeon.model.geoclip._published import check_published_backbone

        return check_published_backbone(backbone)
