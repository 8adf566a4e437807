"""Typed configuration of the curation pipeline. Defaults live in `defaults.yaml` beside
this file; a user's YAML and ``key=value`` overrides are merged on top and validated here.

The config is built from the stages' own registrations (`registry.STAGE_CLASSES`): each stage
brings its sections, its default resources and its dependencies, so adding a stage adds its
config without touching this file. The global steps' sections (`dedup`, `concepts`) follow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Literal

from pydantic import create_model, model_validator

from vidloom.pipelines.curation.concepts import ConceptsConfig
from vidloom.pipelines.curation.dedup import DedupConfig
from vidloom.pipelines.curation.registry import STAGE_CLASSES, STAGE_ORDER, STAGES_BY_NAME
from vidloom.pipelines.curation.sections import DecodeConfig, OcrConfig, SignalsConfig, SplitConfig
from vidloom.pipelines.stage import StageResources
from vidloom.platform.config import StrictModel, load_config

__all__ = [
    "CurationConfig", "DEFAULTS_PATH", "STAGE_ORDER", "StageName", "StagesConfig", "load_curation_config",
    "DecodeConfig", "OcrConfig", "SignalsConfig", "SplitConfig",
]

DEFAULTS_PATH = Path(__file__).with_name("defaults.yaml")

StageName = Literal[STAGE_ORDER]  # type: ignore[valid-type]

# Resources per worker and actor-pool size range of each stage, in pipeline order; each
# default is the stage's own `default_resources` (the reasons are written there).
StagesConfig = create_model(
    "StagesConfig",
    __base__=StrictModel,
    __doc__="Resources per worker and actor-pool size range of each stage, in pipeline order.",
    **{cls.name: (StageResources, cls.default_resources) for cls in STAGE_CLASSES},
)


class _PipelineChecks(StrictModel):
    """Checks on the pipeline list that need the whole config: order and dependencies."""

    @model_validator(mode="after")
    def _pipeline_order(self) -> Any:
        stages = list(self.pipeline)
        if not stages or stages[0] != STAGE_ORDER[0]:
            raise ValueError(f"pipeline must start with {STAGE_ORDER[0]} (the one stage that decodes)")
        if stages != [s for s in STAGE_ORDER if s in stages]:
            raise ValueError(f"pipeline must keep the stage order {list(STAGE_ORDER)}, got {stages}")
        for cls in STAGE_CLASSES:
            if cls.name not in stages:
                continue
            missing = [d for d in cls.dependencies(self) if d not in stages]
            if missing:
                raise ValueError(
                    f"pipeline: stage '{cls.name}' needs stage(s) {missing} under this config, which the "
                    f"pipeline {stages} leaves out; add {missing} to `pipeline`"
                    + (f" or change {cls.name}'s backend" if cls.dependencies(self) != cls.requires else "")
                )
        seen: set[str] = set()
        for k, group in enumerate([] if self.fuse == "all" else self.fuse):
            if len(set(group)) != len(group) or seen & set(group):
                raise ValueError(f"fuse[{k}]={group}: a stage may appear in one fuse group once")
            seen |= set(group)
            if list(group) != [s for s in STAGE_ORDER if s in group]:
                raise ValueError(f"fuse[{k}]={group}: list the stages in pipeline order {list(STAGE_ORDER)}")
            running = [s for s in group if s in stages]
            if running:
                between = stages[stages.index(running[0]):stages.index(running[-1]) + 1]
                if between != running:
                    raise ValueError(
                        f"fuse[{k}]={group}: fused stages must run one after another, but "
                        f"{[s for s in between if s not in running]} would run between them; add it to the group"
                    )
        return self

    def actor_groups(self) -> list[list[str]]:
        """The stages of `pipeline` in order, grouped as they run on actors: the running stages
        of one `fuse` group (`all`: one group of every stage) share one actor pool, every other
        stage has its own. A group is split where a stage is not `fusible` under this config
        (it waits on a remote server) or asks for a different number of GPUs than the stage
        before it, so fusing never makes a CPU stage hold a GPU, nor a decode wait on a VLM."""
        fuse = [list(self.pipeline)] if self.fuse == "all" else self.fuse
        group_of = {name: k for k, group in enumerate(fuse) for name in group}
        groups: list[list[str]] = []
        for name in self.pipeline:
            prev = groups[-1][-1] if groups else None
            if (prev is not None and name in group_of and group_of.get(prev) == group_of[name]
                    and STAGES_BY_NAME[prev].fusible(self) and STAGES_BY_NAME[name].fusible(self)
                    and getattr(self.stages, prev).num_gpus == getattr(self.stages, name).num_gpus):
                groups[-1].append(name)
            else:
                groups.append([name])
        return groups


def _sections() -> dict[str, tuple[type, Any]]:
    fields: dict[str, tuple[type, Any]] = {}
    for cls in STAGE_CLASSES:
        for section, model in cls.config_sections.items():
            if section in fields and fields[section][0] is not model:
                raise TypeError(f"config section '{section}' is declared by two stages with different models")
            fields[section] = (model, model())
    return fields


# The pipeline is data: which stages run, in their fixed order (decode first, the VLM last).
CurationConfig = create_model(
    "CurationConfig",
    __base__=_PipelineChecks,
    __doc__="The whole curation config: `pipeline`, each stage's sections, the global steps, `stages`.",
    pipeline=(list[StageName], list(STAGE_ORDER)),
    fuse=(Literal["all"] | list[list[StageName]], "all"),
    **_sections(),
    dedup=(DedupConfig, DedupConfig()),
    concepts=(ConceptsConfig, ConceptsConfig()),
    stages=(StagesConfig, StagesConfig()),
)


def load_curation_config(config_file: str | Path | None = None, overrides: Iterable[str] = ()) -> CurationConfig:
    """The packaged defaults, then `config_file`, then ``key=value`` overrides."""
    return load_config(CurationConfig, DEFAULTS_PATH, config_file, overrides)
