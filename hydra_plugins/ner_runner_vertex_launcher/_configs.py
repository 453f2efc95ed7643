"""Each sweep job's config, composed as Hydra composes it but without recomposing the defaults tree per job."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

from omegaconf import DictConfig, open_dict


class SweepConfigs:
    """Each job's config, as `ConfigLoader.load_sweep_config` composes it, at a fraction of the cost.

    Hydra recomposes the whole defaults tree for every job (~0.1 s of CPU each). Jobs of a sweep mostly
    differ in plain values, so the tree is composed once per distinct set of config-group choices and each
    job's value overrides are applied to a copy, with Hydra's own override parser and applier. Anything
    unusual falls back to Hydra's full composition.
    """

    def __init__(self, loader: Any, master: DictConfig):
        self.loader = loader
        self.master = master
        self._bases: Dict[tuple, DictConfig] = {}
        self._repo: Any = None

    def load(self, overrides: Sequence[str]) -> DictConfig:
        try:
            return self._fast(list(overrides))
        except Exception:  # let Hydra compose it and report any error in its own words
            return self.loader.load_sweep_config(self.master, list(overrides))

    def _fast(self, overrides: List[str]) -> DictConfig:
        import copy

        from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
        from hydra._internal.config_repository import CachingConfigRepository
        from hydra._internal.defaults_list import Overrides
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parsed = OverridesParser.create().parse_overrides(overrides=overrides)
        if any(o.is_hydra_override() or o.is_sweep_override() for o in parsed):
            raise ValueError("not a plain job override list")
        if self._repo is None:
            self._repo = CachingConfigRepository(self.loader.repository)
        values = Overrides(repo=self._repo, overrides_list=parsed).config_overrides
        value_ids = {id(o) for o in values}
        groups = tuple(o.input_line for o in parsed if id(o) not in value_ids)
        base = self._bases.get(groups)
        if base is None:
            base = self._bases[groups] = self.loader.load_sweep_config(self.master, list(groups))
        cfg = copy.deepcopy(base)
        ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
        with open_dict(cfg.hydra):
            cfg.hydra.overrides.task = [o.input_line for o in parsed]
            dirname = cfg.hydra.job.config.override_dirname
            cfg.hydra.job.override_dirname = get_overrides_dirname(
                overrides=parsed, kv_sep=dirname.kv_sep, item_sep=dirname.item_sep, exclude_keys=dirname.exclude_keys
            )
        return cfg
