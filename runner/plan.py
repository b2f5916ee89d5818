"""Resolve an episode version into concrete steps: argv lists, working directory, environment."""

from __future__ import annotations

import hashlib
import json
import os
import string
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from reg.registry.catalog import EpisodeVersion, Pipeline
from reg.registry.errors import RegError
from reg.registry.status import python_of


@dataclass
class Step:
    name: str
    argv: list[str]
    cwd: str
    env: dict[str, str]
    reads: list[str]
    outputs: list[str]


@dataclass
class Plan:
    version: EpisodeVersion
    pipeline: Pipeline
    inputs: list[str]  # asset keys the gate must find verified
    steps: list[Step]
    run_dir: Path
    python: str = ""  # the interpreter of the pipeline's virtualenv
    template_fingerprint: str = ""  # commands and parameters, independent of the run folder
    warnings: list[str] = field(default_factory=list)

    @property
    def out_dir(self) -> Path:
        return self.run_dir / "out"

    def fingerprint(self, input_hashes: dict[str, str]) -> str:
        """Equal for two renders with the same commands, parameters and input bytes: up to date."""
        blob = json.dumps({"t": self.template_fingerprint, "inputs": input_hashes}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def find_version(reg, episode: str, version: str) -> EpisodeVersion:
    return reg.catalog.version(episode, version)


def resolve(reg, episode: str, version: str, run_dir: Path) -> Plan:
    v = find_version(reg, episode, version)
    catalog = reg.catalog
    pipeline = catalog.pipelines[v.pipeline]
    if not pipeline.steps:
        raise RegError(
            f"Pipeline '{pipeline.key}' declares no steps in {pipeline.manifest}; add [[pipelines."
            f"{pipeline.key}.steps]] tables with name and argv."
        )
    root = str(reg.pipeline_root(pipeline.key))
    python = python_of(pipeline)
    ep = catalog.episodes[v.episode]
    values = {
        "python": python,
        "root": root,
        "run": str(run_dir),
        "out": str(run_dir / "out"),
        "episode": v.episode,
        "version": v.version,
        "input": SimpleNamespace(
            **{role: reg.placement_path(catalog.assets[k]) for role, k in {**ep.inputs, **v.inputs}.items()}
        ),
        "pipeline": SimpleNamespace(**{k: reg.pipeline_root(k) for k in catalog.pipelines}),
        "asset": SimpleNamespace(**{k: reg.placement_path(a) for k, a in catalog.assets.items() if k.isidentifier()}),
        "param": SimpleNamespace(**v.params),
    }
    venv_env = {}
    if pipeline.venv:
        venv = os.path.expanduser(pipeline.venv)
        venv_env = {"VIRTUAL_ENV": venv, "PATH": f"{venv}/bin:{os.environ.get('PATH', '')}"}
    steps = []
    for spec in pipeline.steps:
        env = {
            **venv_env,
            **{k: fill_template(x, values, pipeline, spec.name) for k, x in {**pipeline.env, **spec.env}.items()},
        }
        steps.append(
            Step(
                spec.name,
                [fill_template(a, values, pipeline, spec.name) for a in spec.argv],
                root,
                env,
                list(spec.reads),
                [fill_template(o, values, pipeline, spec.name) for o in spec.outputs],
            )
        )
    templates = [(s.name, s.argv, sorted({**pipeline.env, **s.env}.items()), s.outputs) for s in pipeline.steps]
    template_fp = hashlib.sha256(
        json.dumps(
            {"steps": templates, "params": v.params, "pipeline": pipeline.key}, sort_keys=True, default=str
        ).encode()
    ).hexdigest()
    return Plan(v, pipeline, catalog.version_inputs(v), steps, run_dir, python, template_fp)


class _Formatter(string.Formatter):
    def get_field(self, field_name, args, kwargs):
        try:
            return super().get_field(field_name, args, kwargs)
        except (KeyError, AttributeError) as exc:
            raise LookupError(field_name) from exc


def fill_template(template: str, values: dict, pipeline: Pipeline, step: str) -> str:
    """Fill an argv template (steps, derived sources); a missing placeholder names the step and the fix."""
    try:
        return _Formatter().vformat(template, (), values)
    except LookupError as exc:
        raise RegError(
            f"Step '{step}' of pipeline '{pipeline.key}' ({pipeline.manifest}) uses the placeholder "
            f"{{{exc.args[0]}}}, which this episode version does not define. Add it (a param under the "
            "version, an input of the episode) or fix the template."
        ) from None
