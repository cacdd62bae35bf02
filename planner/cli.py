"""The ``planner`` command.

Exit codes: 0 the job succeeded (the problem was solved); 1 it was not solved, or the model or
the environment failed; 2 a usage or input error (a bad option, a missing or malformed file, a
configuration value out of range, a model that does not fit the problem); 130 interrupted
(Ctrl-C or SIGTERM). Errors are one line on standard error, never a traceback. With ``--json``
the last line of standard output is one JSON object describing the episode — also when it was
interrupted or ended by an error after it started.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import signal
import sys
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console

from planner.agent import Agent, EpisodeInterrupted, EpisodeResult, ResumeError, StepRecord
from planner.config import PlannerConfig, load_config
from planner.env.base import Environment, Simulator
from planner.env.blocksworld import write_problem
from planner.env.pddl import PDDLEnvironment
from planner.errors import (
    ConfigError,
    ContextOverflowError,
    DomainError,
    EnvironmentCheckError,
    FormatError,
    ModelLoadError,
    PlannerError,
    SchemaError,
    UnknownActionError,
)
from planner.io import CorruptLogError, FileWriteError
from planner.training.errors import CheckpointError, TrainingDataError
from planner.types import State
from planner.world.base import WorldModel
from planner.world.cache import CachedWorldModel
from planner.world.oracle import OracleWorldModel

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Plan before acting: search imagined futures with a world model, then act.",
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)


SERVER_HELP = ("Base URL of a llama.cpp server running the same GGUF file (planner serve MODEL starts one), "
               "e.g. http://127.0.0.1:8080: the world model is asked there instead of run in-process.")
GPU_LAYERS_HELP = "Layers offloaded to a GPU (CUDA or Metal builds of llama.cpp; -1: all)."
VOTES_HELP = ("Ask the world model under N numberings of the objects and keep the answer most give (1..15; "
              "default 1; ties go to the sorted numbering, so 2 is 1. 3 asks a third numbering only where two "
              "disagree).")
VOTE_BELOW_HELP = ("With --votes above 1: ask the other numberings only about answers the first gives with a "
                   "confidence below this (above 0, at most 1; default 0.99; 1: about every answer).")


def _check_vote_below(vote_below: float | None, votes: int) -> None:
    """:class:`ConfigError` when ``--vote-below`` is given but the episode asks one numbering
    (``votes``, from ``--votes`` or the configuration), so that it would change nothing."""
    if vote_below is not None and votes == 1:
        raise ConfigError(f"--vote-below {vote_below} says which answers other numberings are asked about: it "
                          f"needs --votes above 1 (or [model] votes in --config), got 1 vote")


def _check_one_model(oracle: bool, model: Path | None, server: str | None) -> None:
    """:class:`ConfigError` when the exact model is asked for beside a GGUF file or a server."""
    for flag, value in (("--model", model), ("--server", server)):
        if oracle and value is not None:
            raise ConfigError(f"choose one of --oracle and {flag}, not both")


def _check_gpu_layers(value: int | None) -> None:
    """:class:`ConfigError` for a GPU layer count outside ``[model] n_gpu_layers``'s bounds."""
    if value is not None:
        PlannerConfig().updated(model={"n_gpu_layers": value})


def configure_logging(verbose: int) -> None:
    """Log events to standard error: warnings by default, info with -v, debug with -vv."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, stream=sys.stderr, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def build_model(config: PlannerConfig, env: Environment) -> WorldModel:
    """The world model named by ``config.model``, behind a transition cache if configured.

    Raises :class:`ConfigError` when the environment cannot serve it (see
    :func:`check_model_fits`).
    """
    m = config.model
    check_model_fits(m.kind, env, path=m.path)
    if m.kind != "oracle":
        from planner.data.planning_eval import gguf_model

        return gguf_model(config, env)
    model: WorldModel = OracleWorldModel(env)  # type: ignore[arg-type]  # a Simulator, checked above
    if m.cache_size > 0:
        model = CachedWorldModel(model, maxsize=m.cache_size)
    return model


def check_model_fits(kind: str, env: Environment, *, path: Path | None = None) -> None:
    """:class:`ConfigError` (one line) when a model of ``kind`` cannot plan in ``env``: the
    exact model needs ``simulate``; a GGUF model (``path``: the file named, ``None``: the
    shipped default) needs a PDDL environment or one with a shipped model (its
    ``world_model_domain``) unless the file is named (a learned model)."""
    if kind == "oracle" and not isinstance(env, Simulator):
        raise ConfigError(f"--oracle needs an environment with simulate(state, action); "
                          f"{type(env).__name__} has none")
    if (kind != "oracle" and path is None and not isinstance(env, PDDLEnvironment)
            and not isinstance(getattr(env, "world_model_domain", None), str)):
        raise ConfigError(f"a GGUF world model needs a PDDL environment today, got {type(env).__name__}; "
                          "name a learned one with --model DIR/model-q8_0.gguf (planner learn --env … --out DIR), "
                          "or use --oracle with an environment that has simulate()")


def env_label(env: Environment, fallback: str) -> str:
    """A short name of the environment's problem: the PDDL problem's name, else ``fallback``."""
    task = getattr(env, "task", None)
    name = getattr(task, "name", None)
    return name if isinstance(name, str) and name else fallback


FULL_STATE_FACTS = 12
"""States of at most this many facts are shown whole in the imagined plan; larger ones as changes."""


def imagined_text(before: State, after: State) -> str:
    """An imagined state for the console: whole when small, else what changed (``+(holding a)
    -(ontable a)``)."""
    if before.text is not None or after.text is not None or len(after.facts) <= FULL_STATE_FACTS:
        return str(after)
    added = sorted(after.facts - before.facts)
    removed = sorted(before.facts - after.facts)
    return " ".join([*(f"+{f}" for f in added), *(f"-{f}" for f in removed)]) or "(no change)"


def summary_dict(env: Environment, result: EpisodeResult, config: PlannerConfig,
                 model_name: str, *, label: str = "") -> dict[str, Any]:
    return {
        "solved": result.solved,
        "plan": [a.name for a in result.actions],
        "steps": len(result.steps),
        "searches": result.searches,
        "replans": result.replans,
        "divergences": result.divergences,
        "model": model_name,
        "model_calls": result.model_calls,
        "cache_hits": result.cache_hits,
        "invalid_answers": result.invalid_answers,
        "split_votes": result.split_votes,
        "votes": config.model.votes,
        **({"vote_below": config.model.vote_below} if config.model.votes > 1 else {}),
        "prompt_tokens": result.prompt_tokens,
        "generated_tokens": result.generated_tokens,
        "model_seconds": round(result.model_seconds, 4),
        "search_seconds": round(result.search_seconds, 4),
        "wall_seconds": round(result.wall_seconds, 4),
        "stopped_by": result.stopped_by,
        "probes": result.probes,
        "doubted": result.doubted,
        "doubted_applied": result.doubted_applied,
        "verified": result.verified,
        "refused": result.refused,
        "episode": result.episode_id,
        "resumed_steps": result.resumed_steps,
        "error": result.error,
        "search": config.search.algorithm,
        "problem": env_label(env, label),
    }


def print_summary(result: EpisodeResult, summary: dict[str, Any]) -> None:
    verdict = "[bold green]solved[/]" if result.solved else f"[bold red]not solved[/] ({result.stopped_by})"
    out.print(f"{summary['problem']}: {verdict} in {len(result.steps)} steps "
              f"({summary['search']}, model: {summary['model']})")
    for rec in result.steps:
        mark = "? " if rec.probe else ("! " if rec.diverged else "~ " if rec.doubted else "  ")
        note = ("   <- probe: no plan from here, tried for real" if rec.probe
                else "   <- real state differed from the imagined one" if rec.diverged
                else "   <- doubted: planned against the model's own answer, happened as imagined" if rec.doubted
                else "")
        out.print(f"  {mark}{rec.index + 1:>3}. {rec.action.name}{note}")
    out.print(
        f"searches {result.searches} · replans {result.replans} · divergences "
        f"{result.divergences} · probes {result.probes}"
        + (f" · doubted {result.doubted} ({result.doubted_applied} applied)" if result.doubted else "")
        + (f" · verified {result.verified} · refused {result.refused}" if result.verified or result.refused else "")
        + (f" · numberings disagreed {result.split_votes}" if result.split_votes else "")
        + f" · model calls {result.model_calls} (cache hits "
        f"{result.cache_hits}) · model {result.model_seconds:.2f} s · search "
        f"{result.search_seconds:.2f} s · total {result.wall_seconds:.2f} s"
    )


def run_episode(
    env: Environment, config: PlannerConfig, *, log: Path | None, tree: Path | None,
    as_json: bool, model_name: str, show_imagined: bool = False, resume: Path | None = None,
    label: str = "",
) -> EpisodeResult:
    """Build the model, play (or resume) one episode, report it. Raises what the agent raises,
    after printing the ``--json`` object of the partial episode. ``label``: the problem's name
    in reports when the environment has no PDDL problem name."""
    model = build_model(config, env)

    def progress(rec: StepRecord) -> None:
        if show_imagined:
            mark = "[green]as imagined[/]" if not rec.diverged else "[red]DIVERGED, replanning[/]"
            if rec.doubted:
                mark += (" (a doubted step, planned against the model's own answer)" if not rec.diverged
                         else " (a doubted step: the model's own answer was right)")
            err.print(f"  real step {rec.index + 1}: {rec.action.name} -> {mark}")
            if rec.observation:
                err.print(f"      {rec.observation}", markup=False)
        if not as_json:
            status.update(f"step {rec.index + 1} · {rec.action.name}"
                          + (" · diverged, replanning" if rec.diverged else ""))

    agent = Agent(env, model, config=config, log_path=log, on_step=progress)
    if show_imagined:
        first = agent.plan(env.reset(seed=config.search.seed)[0])
        verdict = "reaches the goal" if first.plan.reaches_goal else "does not reach the goal"
        out.print(f"imagined plan ({len(first.plan)} actions, {verdict}, "
                  f"{first.stats.model_calls} model calls, {first.stats.wall_seconds:.2f} s):")
        render = getattr(env, "render_text", None)
        for i, (action, before, state) in enumerate(
                zip(first.plan.actions, first.plan.states, first.plan.states[1:]), 1):
            out.print(f"  {i:>3}. {action.name:<22} imagined: {imagined_text(before, state)}", markup=False)
            if callable(render):
                with contextlib.suppress(PlannerError):  # a game without its text engine
                    out.print(f"         {render(before, action, state)}", markup=False)
        if not first.plan.reaches_goal and config.agent.doubt > 0:
            out.print("(no imagined plan reaches the goal: the agent searches again through the answers its model "
                      "doubts, then probes)")
        out.print("executing in the real environment (every step checked):")
    try:
        with err.status("planning…") as status:
            result = agent.run(seed=config.search.seed, resume=resume)
    except EpisodeInterrupted as stop:
        if as_json:
            print(json.dumps(summary_dict(env, stop.result, config, model_name, label=label)))
        raise
    except PlannerError as exc:
        partial = getattr(exc, "episode_result", None)
        if as_json and isinstance(partial, EpisodeResult):
            print(json.dumps(summary_dict(env, partial, config, model_name, label=label)))
        raise
    summary = summary_dict(env, result, config, model_name, label=label)
    if show_imagined:
        out.print(f"(the imagined plan above cost {first.stats.model_calls} model calls in "
                  f"{first.stats.wall_seconds:.2f} s; the agent's own search below found them in the cache)")
    if as_json:
        print(json.dumps(summary), flush=True)
    else:
        print_summary(result, summary)
    # The episode is reported before the tree is written: a tree that cannot be written (an
    # error, exit 2) or an interrupt while writing it does not hide what happened.
    if tree is not None:
        if result.last_search is None:
            err.print(f"no search tree to write to {tree}: the start state already satisfies the goal")
        else:
            result.last_search.write_tree(tree)
    return result


class SearchName(str, Enum):
    mcts = "mcts"
    beam = "beam"


class HeuristicName(str, Enum):
    auto = "auto"
    goal = "goal"
    ff = "ff"
    add = "add"
    max = "max"
    lmcut = "lmcut"


class ModeName(str, Enum):
    plan = "plan"
    receding = "receding"


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by ``None`` (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _check_output(flag: str, path: Path | None) -> None:
    """Refuse, before any work, an output path that can never be written: a folder, or a path
    under a file."""
    if path is None:
        return
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; name a file")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ConfigError(f"{flag} {path}: {parent} is not a folder")


def _output_folder(flag: str, path: Path) -> None:
    """Check that the output folder ``path`` can be made and written, before any long work (it is
    not made here: a request refused later leaves nothing behind); :class:`ConfigError` naming
    ``flag`` and the reason otherwise."""
    from planner.io import FileWriteError, writable_folder

    try:
        writable_folder(path, create=False)
    except FileWriteError as exc:
        raise ConfigError(f"{flag}: {exc}") from None


def _value(choice: Enum | None) -> str | None:
    return None if choice is None else str(choice.value)


ENV_HELP = ("Environment instead of PDDL files: a registered id (blocksworld-v0, gripper-v0, "
            "logistics-v0, briefcase-v0, pddl-v0, frozenlake-v0) "
            "or PATH.py:FACTORY (FACTORY(seed, **kwargs) returns the environment).")
ENV_ARG_HELP = "key=value passed to the environment's factory (value read as JSON when it parses); repeatable."
WORKERS_BASE_HELP = ("Jobs at once: 1 (default) runs them in this process, one after another; N > 1 in N local worker "
                     "processes; with --ray, N Ray actors (default: one per CPU Ray reports).")
WORKERS_HELP = WORKERS_BASE_HELP + (" Each worker loads the model once and runs llama.cpp with one thread unless "
                                    "--threads says otherwise.")
RAY_HELP = ("Run the jobs on Ray: a cluster address (host:port, ray://host:port, auto), or 'local' to start Ray here "
            "for this run (needs the optional ray extra of the planner package).")


def _options_source(config: Path | None) -> str:
    """Where merged settings come from, for an error about them: the options alone, or the
    configuration file ``config`` with them (a file's ``votes = 3`` and ``--oracle`` clash)."""
    return "command-line options" if config is None else f"{config} together with the command-line options"


def _option_error(exc: ConfigError) -> ConfigError:
    """``exc`` naming the ``planner train`` option, not the :class:`TrainConfig` field behind it
    (``TrainConfig.shuffle_objects`` → ``--shuffle-objects``)."""
    return ConfigError(re.sub(r"TrainConfig\.(\w+)", lambda m: "--" + m.group(1).replace("_", "-"), str(exc)))


def parse_focus(items: list[str] | None) -> tuple[tuple[str, float], ...]:
    """``["use=3", "slice=2.5"]`` → ``(("use", 3.0), ("slice", 2.5))`` (``--focus``);
    :class:`ConfigError` naming an item that is not ``ACTION=NUMBER``."""
    out = []
    for item in items or []:
        name, sep, value = item.partition("=")
        try:  # ASCII digits only: float() would also read "３" or "1_0"
            factor = float(value) if value.isascii() and "_" not in value else None
        except ValueError:
            factor = None
        if not sep or not name.strip() or factor is None:
            raise ConfigError(f"--focus must look like ACTION=FACTOR (e.g. use=3), got {item!r}")
        if not (math.isfinite(factor) and factor > 0):  # named as typed: 1e400 reads as inf
            raise ConfigError(f"--focus factor of {name.strip()!r} must be a finite number > 0, got {value.strip()}")
        out.append((name.strip(), factor))
    return tuple(out)


def parse_env_args(items: list[str] | None) -> dict[str, Any]:
    """``["blocks=4", "name=cell"]`` → ``{"blocks": 4, "name": "cell"}``: each value is parsed
    as JSON when it parses, else kept as text. :class:`ConfigError` for an item without ``=``,
    a key that is not an identifier, or a key given twice."""
    args: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ConfigError(f"--env-arg must look like key=value with a Python identifier as key, got {item!r}")
        if key in args:
            raise ConfigError(f"--env-arg {key} given twice ({args[key]!r} and {text!r})")
        if key == "seed":
            raise ConfigError("--env-arg seed=… is not an argument of the factory's own: use --seed")
        try:
            args[key] = json.loads(text)
        except ValueError:
            args[key] = text
        except RecursionError:
            raise ConfigError(f"--env-arg {key}: the JSON value nests too deeply") from None
    return args


def make_env(name: str, env_args: list[str] | None, *, seed: int) -> Environment:
    """The environment ``--env name`` with ``--env-arg`` items, built by :func:`planner.make`."""
    from planner.env.registry import make

    return make(name, seed=seed, **parse_env_args(env_args))


def select_env(domain: Path | None, problem: Path | None, env_name: str | None, env_args: list[str] | None,
               *, seed: int) -> tuple[Environment, str]:
    """The environment of ``solve`` and its label: exactly one of DOMAIN PROBLEM or ``--env``."""
    if env_name is not None:
        if domain is not None:
            given = " ".join(str(p) for p in (domain, problem) if p is not None)
            raise ConfigError(f"give either DOMAIN PROBLEM or --env, not both (got {given} and --env {env_name})")
        return make_env(env_name, env_args, seed=seed), env_name
    if env_args:
        raise ConfigError(f"--env-arg {env_args[0]} needs --env NAME|PATH.py:FACTORY")
    if domain is None or problem is None:
        missing = "DOMAIN and PROBLEM" if domain is None else f"PROBLEM (after DOMAIN {domain})"
        raise ConfigError(f"missing {missing}: give the PDDL files, or --env NAME|PATH.py:FACTORY")
    return PDDLEnvironment(domain, problem), str(problem)


@app.command()
def solve(
    domain: Annotated[Path | None, typer.Argument(help="PDDL domain file (or give --env).")] = None,
    problem: Annotated[Path | None, typer.Argument(help="PDDL problem file.")] = None,
    env_name: Annotated[str | None, typer.Option("--env", help=ENV_HELP)] = None,
    env_args: Annotated[list[str] | None, typer.Option("--env-arg", help=ENV_ARG_HELP)] = None,
    search: Annotated[SearchName | None, typer.Option(help="Search algorithm.")] = None,
    simulations: Annotated[int | None, typer.Option(help="MCTS simulations per search.")] = None,
    beam_width: Annotated[int | None, typer.Option(help="Beam width.")] = None,
    max_expansions: Annotated[int | None, typer.Option(help="Beam expansions per search.")] = None,
    max_depth: Annotated[int | None, typer.Option(help="Longest imagined plan.")] = None,
    time_limit: Annotated[float | None, typer.Option(help="Seconds per search.")] = None,
    heuristic: Annotated[HeuristicName | None, typer.Option(
        help="Value of imagined states: goal fraction or a PDDL heuristic.")] = None,
    mode: Annotated[ModeName | None, typer.Option(
        help="plan: run the whole plan with checks; receding: first action, then replan.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Most real steps.")] = None,
    verify: Annotated[list[str] | None, typer.Option(
        "--verify", help="A regular expression naming irreversible actions (repeatable): a planned action that "
                         "matches is executed only when the model, asked again, predicts its imagined outcome "
                         "with confidence of at least --verify-confidence; else it is refused and planned "
                         "around.")] = None,
    verify_confidence: Annotated[float | None, typer.Option(
        help="Least confidence (0..1) of a verified action's prediction (default 0.9).")] = None,
    doubt: Annotated[float | None, typer.Option(
        help="Plan through refusals the model gives at least this probability (0..1) of applying when no "
             "plan is found otherwise, settling them for real (default 0.05; 0: never).")] = None,
    doubt_shortcut: Annotated[int | None, typer.Option(
        help="Follow a plan through doubted refusals when it is at least this many steps shorter than the "
             "model's own (default 2; 0: never).")] = None,
    oracle: Annotated[bool, typer.Option("--oracle", help="Use the exact model.")] = False,
    model: Annotated[Path | None, typer.Option("--model", help="GGUF world model.")] = None,
    threads: Annotated[int | None, typer.Option(help="llama.cpp CPU threads.")] = None,
    gpu_layers: Annotated[int | None, typer.Option(help=GPU_LAYERS_HELP)] = None,
    votes: Annotated[int | None, typer.Option(help=VOTES_HELP)] = None,
    vote_below: Annotated[float | None, typer.Option(help=VOTE_BELOW_HELP)] = None,
    server: Annotated[str | None, typer.Option("--server", help=SERVER_HELP)] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML configuration.")] = None,
    log: Annotated[Path | None, typer.Option("--log", help="Append the episode to this JSONL file.")] = None,
    tree: Annotated[Path | None, typer.Option("--tree", help="Write the last search tree (.graphml or .dot).")] = None,
    seed: Annotated[int | None, typer.Option(
        help="Seed: picks the --env problem (default 0), seeds its reset, breaks search ties.")] = None,
    resume: Annotated[Path | None, typer.Option(
        "--resume", help="Continue the interrupted episode recorded in this log (replays its steps).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object as the last line.")] = False,
    verbose: Annotated[int, typer.Option("-v", count=True, help="More log output (-v, -vv).")] = 0,
) -> None:
    """Solve a PDDL problem (DOMAIN PROBLEM) or an environment (--env): plan with the world
    model, act in the real environment."""
    configure_logging(verbose)
    _check_one_model(oracle, model, server)
    if resume is not None and log is not None and log.resolve() != resume.resolve():
        raise ConfigError(f"--resume {resume} appends to its own log; drop --log {log} or make them the same file")
    if resume is not None and not resume.is_file():
        raise ResumeError(f"episode log not found: {resume}")
    for flag, path in (("--tree", tree), ("--log", log)):
        _check_output(flag, path)
    base = load_config(config) if config is not None else PlannerConfig()
    kind = "oracle" if oracle else ("gguf" if model is not None else None)
    cfg = base.updated(
        source=_options_source(config),
        search=dict(algorithm=_value(search), simulations=simulations, beam_width=beam_width,
                    max_expansions=max_expansions, max_depth=max_depth,
                    time_limit_s=time_limit, heuristic=_value(heuristic), seed=seed),
        agent=dict(mode=_value(mode), max_steps=max_steps, verify=tuple(verify) if verify else None,
                   verify_confidence=verify_confidence, doubt=doubt, doubt_shortcut=doubt_shortcut),
        model=dict(kind=kind, path=model, n_threads=threads, n_gpu_layers=gpu_layers, server=server, votes=votes,
                   vote_below=vote_below),
    )
    _check_vote_below(vote_below, cfg.model.votes)
    env, label = select_env(domain, problem, env_name, env_args, seed=0 if seed is None else seed)
    check_model_fits(cfg.model.kind, env, path=cfg.model.path)
    name = "oracle" if cfg.model.kind == "oracle" else str(cfg.model.path or "default")
    result = run_episode(env, cfg, log=log, tree=tree, as_json=as_json, model_name=name, resume=resume,
                         label=label)
    if not result.solved:
        raise typer.Exit(1)


@app.command()
def demo(
    blocks: Annotated[int | None, typer.Option(
        help="Number of blocks (2-12, default 5; the shipped model knows up to 8).")] = None,
    seed: Annotated[int, typer.Option(help="Problem seed (with --env: passed to its factory and reset).")] = 0,
    env_name: Annotated[str | None, typer.Option("--env", help=ENV_HELP)] = None,
    env_args: Annotated[list[str] | None, typer.Option("--env-arg", help=ENV_ARG_HELP)] = None,
    search: Annotated[SearchName | None, typer.Option(help="Search algorithm.")] = None,
    oracle: Annotated[bool, typer.Option("--oracle", help="Use the exact model.")] = False,
    model: Annotated[Path | None, typer.Option("--model", help="GGUF world model.")] = None,
    gpu_layers: Annotated[int | None, typer.Option(help=GPU_LAYERS_HELP)] = None,
    votes: Annotated[int | None, typer.Option(help=VOTES_HELP)] = None,
    vote_below: Annotated[float | None, typer.Option(help=VOTE_BELOW_HELP)] = None,
    server: Annotated[str | None, typer.Option("--server", help=SERVER_HELP)] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the generated PDDL.")] = Path("runs/demo"),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object as the last line.")] = False,
    verbose: Annotated[int, typer.Option("-v", count=True, help="More log output.")] = 0,
) -> None:
    """Generate a Blocksworld problem (or build --env) and solve it end to end, imagined plan vs
    real steps."""
    configure_logging(verbose)
    _check_one_model(oracle, model, server)
    kind = "oracle" if oracle else "gguf"
    name = "oracle" if kind == "oracle" else str(model or "default")
    model_options = dict(kind=kind, path=model, n_gpu_layers=gpu_layers, server=server, votes=votes,
                         vote_below=vote_below)
    _check_vote_below(vote_below, 1 if votes is None else votes)
    if env_name is not None:
        _demo_env(env_name, env_args, blocks=blocks, seed=seed, search=_value(search), model_options=model_options,
                  out_dir=out_dir, as_json=as_json, model_name=name)
        return
    if env_args:
        raise ConfigError(f"--env-arg {env_args[0]} needs --env NAME|PATH.py:FACTORY")
    blocks = 5 if blocks is None else blocks
    if not 2 <= blocks <= 12:
        raise ConfigError(f"--blocks must lie in 2..12, got {blocks}")
    domain, problem = write_problem(out_dir, blocks, seed=seed)
    cfg = PlannerConfig().updated(search=dict(algorithm=_value(search)), model=model_options)
    env = PDDLEnvironment(domain, problem)
    if not as_json:
        out.print(f"problem {problem} ({blocks} blocks)")
        out.print(f"  start: {env.state}")
        out.print(f"  goal:  {env.goal}")
    result = run_episode(env, cfg, log=out_dir / "episode.jsonl", tree=None, as_json=as_json,
                         model_name=name, show_imagined=not as_json)
    if not result.solved:
        raise typer.Exit(1)


def _demo_env(env_name: str, env_args: list[str] | None, *, blocks: int | None, seed: int, search: str | None,
              model_options: dict[str, Any], out_dir: Path, as_json: bool, model_name: str) -> None:
    """``planner demo --env …``: build the environment, show it, play one episode."""
    if blocks is not None:
        raise ConfigError(f"--blocks {blocks} is for the generated Blocksworld problem; with --env give "
                          "--env-arg blocks=N (blocksworld-v0) instead")
    env = make_env(env_name, env_args, seed=seed)
    check_model_fits(model_options["kind"], env, path=model_options["path"])
    cfg = PlannerConfig().updated(search=dict(algorithm=search, seed=seed), model=model_options)
    if not as_json:
        start, info = env.reset(seed=seed)
        out.print(f"environment {env_name} (seed {seed})")
        task = info.get("task") if isinstance(info, dict) else None
        if isinstance(task, str):
            out.print(f"  task:  {task}", markup=False)
        observation = info.get("observation") if isinstance(info, dict) else None
        if isinstance(observation, str) and observation:
            out.print("  " + observation.strip().replace("\n", "\n  "), markup=False)
        out.print(f"  start: {start}", markup=False)
        out.print(f"  goal:  {env.goal}", markup=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = run_episode(env, cfg, log=out_dir / "episode.jsonl", tree=None, as_json=as_json,
                         model_name=model_name, show_imagined=not as_json, label=env_name)
    if not result.solved:
        raise typer.Exit(1)


@app.command()
def collect(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for train/val/test JSONL logs.")] = Path("runs/data"),
    domain: Annotated[Path | None, typer.Option(help="Your own PDDL domain (default: generated Blocksworld).")] = None,
    problems: Annotated[list[Path] | None, typer.Option("--problem", help="PDDL problem files.")] = None,
    train_problems: Annotated[int, typer.Option(help="Generated Blocksworld problems for training.")] = 2400,
    val_problems: Annotated[int, typer.Option(help="… for validation.")] = 120,
    test_problems: Annotated[int, typer.Option(help="… for testing.")] = 600,
    blocks: Annotated[str, typer.Option(help="Blocksworld sizes, e.g. 3-8.")] = "3-8",
    test_fraction: Annotated[float, typer.Option(help="Share of --problem files held out for test.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of behaviour and problem choice.")] = 0,
    env_name: Annotated[str | None, typer.Option("--env", help=ENV_HELP)] = None,
    env_args: Annotated[list[str] | None, typer.Option("--env-arg", help=ENV_ARG_HELP)] = None,
    seeds: Annotated[str, typer.Option(
        help="With --env: environment seeds per split, e.g. train=0-99,val=1000-1019,test=2000-2049.")
    ] = "train=0-99,val=1000-1019,test=2000-2049",
    episodes_per_seed: Annotated[int, typer.Option(help="With --env: exploration episodes per seed.")] = 3,
    max_steps: Annotated[int, typer.Option(help="With --env: most tries per episode.")] = 60,
    behaviour: Annotated[list[str] | None, typer.Option(
        "--behaviour",
        help="With --env: random, novelty, probe, boundary (repeatable; default the first three).")] = None,
    demos: Annotated[Path | None, typer.Option(
        help='With --env: a JSON file {"SEED": ["(action a)", ...]} of demonstrations.')] = None,
    workers: Annotated[int | None, typer.Option(help=WORKERS_BASE_HELP + " With --workers or --ray each problem (seed) "
                                                "is collected on its own, with its own random stream (and "
                                                "exploration memory): the same records for any worker count, "
                                                "each job's together, jobs in the order they finish.")] = None,
    ray: Annotated[str | None, typer.Option("--ray", help=RAY_HELP)] = None,
) -> None:
    """Run environments with diverse behaviour; append every real transition to JSONL logs,
    split by problem (PDDL) or by seed (--env: only reset and step are used)."""
    from planner.data.collect import collect_blocksworld, collect_pddl

    if env_name is not None and (domain is not None or problems):
        raise ConfigError("give either --env or --domain/--problem, not both")
    if env_name is None and demos is not None:
        raise ConfigError("--demos needs --env (demonstrations are replayed in that environment)")
    parallel = workers is not None or ray is not None
    _output_folder("--out", out_dir)
    if env_name is not None:
        _collect_env(out_dir, env_name, env_args, seeds=seeds, episodes_per_seed=episodes_per_seed,
                     max_steps=max_steps, behaviour=behaviour, demos=demos, seed=seed,
                     executor=_executor(workers, ray) if parallel else None)
        return

    if not 0.0 <= test_fraction < 1.0:  # also refuses nan
        raise ConfigError(f"--test-fraction must lie in [0, 1), got {test_fraction!r}")
    if problems and domain is None:
        raise ConfigError("--problem needs --domain (the PDDL domain of those problems)")
    if domain is not None:
        if not problems:
            raise ConfigError("--domain needs at least one --problem file")
        files = list(problems)
        n_test = max(1, round(len(files) * test_fraction)) if len(files) > 1 else 0
        if parallel:
            from planner.scale.collect import PddlCollect, pddl_jobs

            splits = ["test" if i >= len(files) - n_test else "train" for i in range(len(files))]
            _print_collected(out_dir, _collect_jobs(
                PddlCollect(domain=str(domain.resolve()), seed=seed),
                pddl_jobs([f.resolve() for f in files], splits), out_dir, workers, ray))
            return
        stats = collect_pddl(out_dir, domain=domain, problems=files, seed=seed,
                             split_of=lambda i: "test" if i >= len(files) - n_test else "train")
    else:
        lo, _, hi = blocks.partition("-")
        try:
            sizes = list(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            raise ConfigError(f"--blocks must look like 3-8, got {blocks!r}") from None
        if not sizes or sizes[0] < 2:
            raise ConfigError(f"--blocks must look like 3-8, got {blocks!r}")
        total = train_problems + val_problems + test_problems
        if parallel:
            from planner.data.collect import _check_blocksworld_request
            from planner.scale.collect import BlocksworldCollect, blocksworld_jobs

            counts = {"train": train_problems, "val": val_problems, "test": test_problems}
            _check_blocksworld_request(counts, sizes)  # type: ignore[arg-type]  # exit 2 before any job
            _print_collected(out_dir, _collect_jobs(BlocksworldCollect(blocks=tuple(sizes), seed=seed),
                                                    blocksworld_jobs(counts), out_dir, workers, ray))
            return
        with err.status(f"collecting from {total} problems…"):
            stats = collect_blocksworld(out_dir, blocks=sizes, seed=seed,
                                        problems={"train": train_problems, "val": val_problems,
                                                  "test": test_problems})
    for split, st in stats.items():
        out.print(f"{split:>5}: {st.problems} problems, {st.episodes} episodes, {st.transitions} transitions "
                  f"({st.applicable} applicable, {st.done} reaching the goal) -> {out_dir / (split + '.jsonl')}")


def _executor(workers: int | None, ray: str | None) -> Any:
    from planner.scale.executor import make_executor

    return make_executor(workers=workers, ray=ray)


def _collect_jobs(task: Any, jobs: list[Any], out_dir: Path, workers: int | None, ray: str | None,
                  executor: Any = None) -> dict[str, dict[str, int]]:
    """Run collection jobs (:mod:`planner.scale.collect`) with a progress bar; split → counts."""
    from planner.scale.collect import collect_jobs
    from planner.scale.progress import JobProgress

    executor = executor if executor is not None else _executor(workers, ray)
    with JobProgress(err, "problems") as bar:
        bar.begin(total=len(jobs))
        return collect_jobs(task, jobs, out_dir=out_dir, executor=executor, progress=bar)


def _print_collected(out_dir: Path, stats: dict[str, dict[str, int]], *, unit: str = "problems") -> None:
    for split, st in stats.items():
        extra = f", {st['new_objects']} steps naming new objects" if st.get("new_objects") else ""
        out.print(f"{split:>5}: {st.get('problems', 0)} {unit}, {st.get('episodes', 0)} episodes, "
                  f"{st.get('transitions', 0)} transitions ({st.get('applicable', 0)} applicable, "
                  f"{st.get('done', 0)} reaching the goal{extra}) -> {out_dir / (split + '.jsonl')}")


@app.command()
def train(
    data: Annotated[Path, typer.Option("--data", help="Folder with train.jsonl (and val.jsonl).")] = Path("runs/data"),
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for checkpoints and GGUF files.")] = Path("runs/model"),
    steps: Annotated[int | None, typer.Option(help="Optimizer steps (default 5000; not with --minutes).")] = None,
    minutes: Annotated[float | None, typer.Option(
        help="Train for about this long instead of a number of steps: the first warm-up steps are timed and "
             "the steps chosen from their rate (the summary records them: --steps N repeats the run).")] = None,
    batch_size: Annotated[int, typer.Option(help="Sequences per step.")] = 64,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 3e-3,
    min_lr: Annotated[float | None, typer.Option(
        help="Learning rate the cosine decay from the peak ends at (default 1e-4, or --lr when that is "
             "lower).")] = None,
    warmup: Annotated[int, typer.Option(help="Steps of linear learning-rate warm-up.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed (model init and batch order).")] = 0,
    threads: Annotated[int, typer.Option(
        help="CPU threads for training, and processes reading a large log (JSON decoding and encoding in "
             "parallel; at most the cores available).")] = 2,
    device: Annotated[str, typer.Option(
        help="Where PyTorch trains: cpu, cuda, cuda:N, or auto (a CUDA device when PyTorch sees one).")] = "cpu",
    loader_workers: Annotated[int | None, typer.Option(
        help="Processes building batches ahead of the training loop (default: 0 on the CPU, up to 8 with a "
             "GPU, whose steps outpace one Python process building batches).")] = None,
    dim: Annotated[int | None, typer.Option(help="Embedding width (default 128; with --infer-schema: from the "
                                            "data, as planner learn chooses).")] = None,
    layers: Annotated[int | None, typer.Option(help="Transformer blocks (default 4; with --infer-schema: from "
                                               "the data).")] = None,
    context: Annotated[int | None, typer.Option(help="Context in tokens (default 128; with --infer-schema: from "
                                                "the data).")] = None,
    max_objects: Annotated[int | None, typer.Option(
        help="Placeholder objects the model knows (default 8; with --infer-schema: the most any record has).")] = None,
    domain: Annotated[Path | None, typer.Option(help="PDDL domain of the data (default: Blocksworld).")] = None,
    infer_schema: Annotated[bool, typer.Option(
        "--infer-schema", help="Learn the predicates and actions from the training data, as planner learn does "
                               "(for data of an environment without a PDDL domain; not with --domain).")] = False,
    quantize: Annotated[bool, typer.Option(
        "--quantize/--no-quantize", help="Quantize to Q8_0 with llama.cpp and compare (default); --no-quantize "
                                         "writes model-f32.gguf alone, e.g. on a GPU machine without llama.cpp "
                                         "(the same command run again where llama.cpp is installed quantizes "
                                         "it: a finished checkpoint is not trained further).")] = True,
    balance: Annotated[float, typer.Option(
        help="How records are drawn, grouped by action and by whether it applied: a group of n records is "
             "drawn in proportion to n**BALANCE (1: as collected; 0: every group alike; 0.5: rare cases more "
             "often).")] = 1.0,
    precision: Annotated[str, typer.Option(
        help="Arithmetic of the matrix products: fp32; tf32 (CUDA's TensorFloat-32 units); bf16 (forward pass "
             "in bfloat16); auto: tf32 on CUDA, fp32 on the CPU. Weights and the exported model are float32 "
             "in every case.")] = "auto",
    shuffle_objects: Annotated[float, typer.Option(
        help="Chance (0..1) that a training sequence's objects are renamed by a random permutation of their "
             "placeholders, so the model learns rules from the facts, not from where the objects' names sort "
             "(0: none).")] = 0.0,
    focus: Annotated[list[str] | None, typer.Option(
        "--focus", help="ACTION=FACTOR: draw the records of this action (applied or not) FACTOR times as often "
                        "as --balance alone would, e.g. use=3 for an action the model still gets wrong; "
                        "repeatable.")] = None,
    codec_version: Annotated[int | None, typer.Option(
        help="Prompt layout the model learns: 1 (goal, state, action); 2 (the state's facts that name one of "
             "the action's arguments written again after the action, so a rule that links the action to a "
             "fact through a third object is one look-up); 3 (only those facts whose first argument is one of "
             "the action's: a shorter prompt). Recorded in the model file. Default: the --init model's, "
             "else 1.")] = None,
    init: Annotated[Path | None, typer.Option(
        "--init", help="Start from this GGUF world model's weights (F32, F16 or Q8_0) instead of random ones, "
                       "e.g. to go on training a model with more data or another --balance: its schema, shape "
                       "and objects are used (not with --domain, --infer-schema, --dim, --layers, --context, "
                       "--max-objects).")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Ignore an existing checkpoint.")] = False,
) -> None:
    """Train a fact-delta world model (needs the `train` extra: torch), export GGUF, quantize
    to Q8_0 with llama.cpp and check the quantized model against the float one."""
    try:
        from planner.training.train import TrainConfig
        from planner.training.train import train as run_training
    except ImportError as exc:
        raise ConfigError(f"training needs PyTorch: pip install -e '.[train]' ({exc})") from None

    from planner.training.export import comparison_log, finish_model
    from planner.training.train import (
        check_focus,
        default_loader_workers,
        option_text,
        resolve_device,
        resolve_precision,
    )
    from planner.world.gguf_io import LlamaShape

    focused = parse_focus(focus)
    try:
        check_focus(focused)  # now, not after the data is read (--infer-schema) or the schema chosen
    except ConfigError as exc:
        raise _option_error(exc) from None
    if steps is not None and minutes is not None:
        raise ConfigError(f"give --steps ({steps}) or --minutes ({minutes}), not both")
    if minutes is not None and not (math.isfinite(minutes) and 0 < minutes <= MAX_TRAIN_MINUTES):
        raise ConfigError(f"--minutes must be a number > 0 and at most {MAX_TRAIN_MINUTES} (a week), got {minutes}")
    if infer_schema and domain is not None:
        raise ConfigError(f"--infer-schema learns the schema from the data; it cannot be combined with --domain "
                          f"{domain}")
    train_file = data / "train.jsonl"
    if not train_file.is_file():
        raise ConfigError(f"no training data: {train_file} not found (run `planner collect` first)")
    _output_folder("--out", out_dir)
    if init is not None:
        taken = {"--domain": domain, "--infer-schema": infer_schema or None, "--dim": dim, "--layers": layers,
                 "--context": context, "--max-objects": max_objects}
        clash = next((flag for flag, value in taken.items() if value is not None), None)
        if clash is not None:
            raise ConfigError(f"--init {init} gives the schema, shape and objects; {clash} cannot be given with it")
        domain_name, predicates, actions, signature, shape, objects = _model_schemas(init)
    elif infer_schema:
        domain_name, predicates, actions, signature, shape, objects = _data_schemas(train_file)
    else:
        domain_name, predicates, actions, signature = _domain_schemas(domain)
        shape, objects = LlamaShape(), 8
    try:
        check_focus(focused, actions)  # before training starts (and its output, and its reading of the data)
    except ConfigError as exc:
        raise _option_error(exc) from None
    if init is None:
        width = dim if dim is not None else shape.dim
        shape = LlamaShape(dim=width, n_layers=layers if layers is not None else shape.n_layers,
                           n_heads=max(1, width // 32), ffn_dim=4 * width,
                           context=context if context is not None else shape.context)
    chosen = resolve_device(device)
    if loader_workers is None:
        loader_workers = default_loader_workers(chosen)
    try:
        cfg = TrainConfig(steps=steps if steps is not None else 5000, batch_size=batch_size, lr=lr,
                          min_lr=min_lr if min_lr is not None else min(TrainConfig.min_lr, lr),
                          warmup=warmup, seed=seed, threads=threads, shape=shape,
                          max_objects=max_objects if max_objects is not None else objects, device=device,
                          loader_workers=loader_workers, balance=balance, precision=precision,
                          shuffle_objects=shuffle_objects + 0.0,  # -0 is 0
                          focus=focused, codec_version=codec_version)
        resolve_precision(precision, chosen)
    except ConfigError as exc:
        raise _option_error(exc) from None
    with _training_progress(cfg.steps if minutes is None else None, every=cfg.checkpoint_every) as progress:
        val = data / "val.jsonl"
        try:
            summary = run_training(train_path=train_file, val_path=val if val.is_file() else None, out_dir=out_dir,
                                   predicates=predicates, actions=actions,
                                   domain=domain_name, signature=signature, config=cfg, resume=not fresh,
                                   progress=progress, seconds=None if minutes is None else minutes * 60,
                                   init=init)
        except ConfigError as exc:
            raise _option_error(exc) from None
    out.print(f"trained {summary['params']} parameters for {summary['steps']} steps on {summary['device']} "
              f"({summary['precision']}) in {summary['train_seconds']:.0f} s")
    for key, asked in summary.get("unapplied", {}).items():
        out.print(f"note: {out_dir} had finished its {summary['steps']} steps with {option_text(key, summary[key])}: "
                  f"exported as trained, not with {option_text(key, asked)} (--fresh trains anew)")
    # the quantized file and its report were of an earlier model: gone before this one's are made, so
    # a quantization cut short leaves no file that is not of the new model
    for stale in ("model-q8_0.gguf", "quantize-report.json"):
        try:
            (out_dir / stale).unlink(missing_ok=True)
        except OSError as exc:  # a folder of that name, say
            raise ConfigError(f"cannot replace {out_dir / stale} with the new model's: {exc.strerror or exc}") from None
    if not quantize:
        out.print(f"wrote {out_dir / 'model-f32.gguf'} (not quantized: --no-quantize)")
        return
    report = finish_model(out_dir, data_path=comparison_log(val, train_file))
    agreement = report["agreement"]
    compared = (f"Q8_0 agrees with F32 on {agreement:.2%} of {report['checked']} predictions" if agreement is not None
                else "no transitions to compare Q8_0 with F32 on")
    out.print(f"wrote {report['f32']} and {report['q8_0']} ({report['q8_0_bytes'] / 1e6:.2f} MB); {compared}")


@contextlib.contextmanager
def _training_progress(total: int | None, *, every: int) -> Iterator[Callable[[int, dict[str, float]], None]]:
    """A progress callback for training: a live bar on a terminal; elsewhere (a log file, a
    pipe) a plain line every ``every`` steps, at each validation and at the end, so a run in
    the background shows how it goes."""
    if err.is_terminal:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        columns = (TextColumn("training"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                   TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=err) as bar:
            task = bar.add_task("train", total=total, loss=float("nan"))

            def update(step: int, info: dict[str, float]) -> None:
                bar.update(task, completed=step, total=int(info["steps"]), loss=info["loss"])

            yield update
        return
    import time

    started = time.monotonic()

    trained_from: float | None = None  # when the first step was reported: the seconds shown count from there

    def line(step: int, info: dict[str, float]) -> None:
        nonlocal trained_from
        if trained_from is None:
            trained_from = time.monotonic()
            print(f"training: data read and the first step taken in {trained_from - started:.0f} s",
                  file=sys.stderr, flush=True)
        end = int(info["steps"])
        if step % every and step != end and "val_token_acc" not in info:
            return
        seconds = time.monotonic() - trained_from
        val = f", validation token accuracy {info['val_token_acc']:.4f}" if "val_token_acc" in info else ""
        print(f"training: step {step}/{end}, loss {info['loss']:.4f}{val}, learning rate {info['lr']:.2e}, "
              f"{seconds:.0f} s", file=sys.stderr, flush=True)

    print("training: reading the data", file=sys.stderr, flush=True)
    yield line


def _model_schemas(path: Path) -> tuple[str, dict[str, int], dict[str, int], dict[str, Any] | None, Any, int]:
    """(domain, predicate arities, action arities, signature, shape, placeholder objects) of the
    GGUF world model ``path`` (``--init``)."""
    from planner.world.gguf_io import read_model_shape

    info, shape = read_model_shape(path)
    if info.codec is None or not info.predicates:
        raise ConfigError(f"--init {path}: not a fact-delta world model (no codec or schema in its metadata)")
    return info.domain or "env", dict(info.predicates), dict(info.actions), info.signature, shape, info.max_objects


def _data_schemas(train_file: Path) -> tuple[str, dict[str, int], dict[str, int], dict[str, Any] | None, Any, int]:
    """(domain, predicate arities, action arities, signature, shape, placeholder objects) learned
    from the transition log ``train_file`` as ``planner learn`` learns them."""
    from planner.data.schema import infer_schema
    from planner.learn import choose_context, choose_shape, learned_signature
    from planner.world.codec import domain_vocabulary

    records = _read_transitions(train_file, limit=None)
    if not records:
        raise ConfigError(f"no transitions in {train_file}")
    schema = infer_schema(records)
    objects = max(len(r.objects) for r in records)
    vocab = domain_vocabulary(schema.predicates, schema.actions, objects)
    shape = choose_shape(len(vocab), choose_context(records), len(records))
    return (records[0].domain, dict(schema.predicates), dict(schema.actions), learned_signature(schema), shape,
            objects)


MAX_TRAIN_MINUTES = 10_080
"""``planner train --minutes``: at most a week."""

LEARN_SEEDS = "train=0-99,val=1000-1019,test=2000-2049"
"""``planner learn``'s environment seeds per split when ``--seeds`` is not given."""


@app.command()
def learn(
    env_name: Annotated[str | None, typer.Option("--env", help=ENV_HELP + " With --improve: default the "
                                                 "environment of DIR's recorded planner learn command.")] = None,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Folder for the data, the model and its card (a new learn; not with --improve).")] = None,
    env_args: Annotated[list[str] | None, typer.Option("--env-arg", help=ENV_ARG_HELP)] = None,
    minutes: Annotated[float, typer.Option(help="Time budget of the whole pipeline (minutes).")] = 10.0,
    seeds: Annotated[str | None, typer.Option(
        help=f"Environment seeds per split (disjoint); default {LEARN_SEEDS}.")] = None,
    seed: Annotated[int | None, typer.Option(
        help="Seed of exploration, weights and batches (default 0; with --improve: the training run's).")] = None,
    steps: Annotated[int | None, typer.Option(
        help="Training steps (with --improve: steps added; default: from --minutes).")] = None,
    episodes_per_seed: Annotated[int | None, typer.Option(help="Exploration episodes per seed (default 3).")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Most tries per exploration episode (default 60).")] = None,
    rounds: Annotated[int | None, typer.Option(
        help="Training rounds (default 3): between two, the model so far plays episodes on training seeds and "
             "their real steps (divergences weighted) join the data; 1: exploration data only.")] = None,
    improve_dir: Annotated[Path | None, typer.Option(
        "--improve", help="Improve the model in DIR (a folder written by planner learn --out DIR): fold the real "
                          "steps of --logs into DIR/data/train.jsonl (diverged steps weighted), continue training "
                          "from DIR/checkpoint.pt, measure fidelity and planning success before and after on the "
                          "same held-out seeds. The model before is kept as DIR/model-q8_0.before.gguf.")] = None,
    logs: Annotated[list[Path] | None, typer.Option(
        "--logs", help="With --improve: an episode log written by planner solve --log (repeatable). A corrupt log, "
                       "or one using words outside the model's vocabulary, is refused before anything changes.")
    ] = None,
    device: Annotated[str, typer.Option(
        help="Where PyTorch trains: cpu, cuda, cuda:N, or auto (a CUDA device when PyTorch sees one); the "
             "training rate, and so the steps --minutes buys, is measured there.")] = "cpu",
) -> None:
    """Learn a world model of an environment from interaction alone: collect, infer the
    vocabulary, train, quantize to Q8_0, measure fidelity and planning success on held-out
    seeds, write DIR/model-q8_0.gguf and DIR/README.md (needs the `train` extra: torch).
    With --improve DIR --logs LOG: continue that model's training with recorded real steps."""
    import shlex

    from planner.env.registry import split_aware
    from planner.learn import ROUNDS
    from planner.learn import learn as run_learn

    if improve_dir is not None:
        _learn_improve(improve_dir, logs or [], env_name, env_args, minutes=minutes, steps=steps, seed=seed,
                       device=device, new_run={"--out": out_dir, "--seeds": seeds,
                                               "--episodes-per-seed": episodes_per_seed, "--max-steps": max_steps,
                                               "--rounds": rounds})
        return
    if logs:
        raise ConfigError(f"--logs {logs[0]} needs --improve DIR (the folder of a planner learn run to improve)")
    if env_name is None:
        raise ConfigError("missing --env NAME|PATH.py:FACTORY (the environment to learn), or --improve DIR")
    if out_dir is None:
        raise ConfigError("missing --out DIR (the folder for the data, the model and its card)")
    seeds = LEARN_SEEDS if seeds is None else seeds
    seed = 0 if seed is None else seed
    episodes_per_seed = 3 if episodes_per_seed is None else episodes_per_seed
    max_steps = 60 if max_steps is None else max_steps
    rounds = ROUNDS if rounds is None else rounds
    kwargs = parse_env_args(env_args)
    ranges = _parse_seed_ranges(seeds)
    build = split_aware(env_name, kwargs, ranges)
    build(next(iter(ranges.values()))[0])  # a bad name or argument: exit 2 now
    _output_folder("--out", out_dir)
    argv = ["planner", "learn", "--env", env_name, *[a for item in env_args or [] for a in ("--env-arg", item)],
            "--out", str(out_dir), "--minutes", f"{minutes:g}", "--seeds", seeds, "--seed", str(seed),
            *(["--steps", str(steps)] if steps is not None else []),
            "--episodes-per-seed", str(episodes_per_seed), "--max-steps", str(max_steps), "--rounds", str(rounds),
            *(["--device", device] if device != "cpu" else [])]
    report = run_learn(build, out_dir=out_dir, seeds=ranges, minutes=minutes,
                       seed=seed, domain_name=Path(env_name.split(":")[0]).stem,
                       progress=lambda line: err.print(line, markup=False), steps=steps,
                       episodes_per_seed=episodes_per_seed, max_steps=max_steps, command=shlex.join(argv),
                       rounds=rounds, device=device)
    out.print(report.fidelity.table())
    out.print(f"planning on held-out seeds {report.planning.seeds_text()}: {report.planning.line()}")
    out.print(f"model {report.model} ({report.params:,} parameters, {report.steps} steps in "
              f"{report.train_seconds:.0f} s); card {report.card}; total {report.total_seconds:.0f} s")


def _option_values(argv: list[str], flag: str) -> list[str]:
    """The values of ``flag`` in a command line (``--flag VALUE`` or ``--flag=VALUE``), in order."""
    found = []
    for i, item in enumerate(argv):
        if item == flag and i + 1 < len(argv):
            found.append(argv[i + 1])
        elif item.startswith(flag + "="):
            found.append(item[len(flag) + 1:])
    return found


def _learn_improve(improve_dir: Path, logs: list[Path], env_name: str | None, env_args: list[str] | None, *,
                   minutes: float, steps: int | None, seed: int | None, new_run: dict[str, Any],
                   device: str = "cpu") -> None:
    """``planner learn --improve DIR --logs LOG…``: the environment is ``--env`` when given,
    else the one DIR's recorded ``planner learn`` command names (``learn.json``, else the
    card's "Reproduce" block); the held-out seeds are the run's test split."""
    import shlex

    from planner.env.registry import split_aware
    from planner.learn import improve, improve_inputs, read_learn_record, recorded_command

    for flag, value in new_run.items():
        if value is not None:
            raise ConfigError(f"{flag} is for a new learn; --improve {improve_dir} keeps that run's folder, data and "
                              "held-out seeds")
    if not logs:
        raise ConfigError("--improve DIR needs --logs LOG (an episode log written by planner solve --log; repeatable)")
    improve_inputs(improve_dir)  # a folder planner learn did not write: exit 2 now
    for log in logs:
        if not log.is_file():
            raise ConfigError(f"--logs {log}: " + ("not a file" if log.exists() else "no such episode log"))
    recorded = recorded_command(improve_dir)
    given_env = env_name is not None
    if env_name is None:
        if env_args:
            raise ConfigError(f"--env-arg {env_args[0]} needs --env NAME|PATH.py:FACTORY")
        names = _option_values(recorded, "--env")
        if not names:
            raise ConfigError(f"--improve {improve_dir}: no recorded planner learn command names the environment "
                              "(learn.json, README.md); give --env NAME|PATH.py:FACTORY")
        env_name, env_args = names[-1], _option_values(recorded, "--env-arg")
    record = read_learn_record(improve_dir)
    test = record.split("test") if record is not None else None
    if test is None:
        test = _parse_seed_ranges((_option_values(recorded, "--seeds") or [LEARN_SEEDS])[-1]).get("test")
        if test is None:
            raise ConfigError(f"--improve {improve_dir}: its recorded --seeds name no test split")
    kwargs = parse_env_args(env_args)
    name = env_name
    # the run's seeds, each in its split (log seeds in none of them: train), as planner learn built them
    recorded_ranges = {k: record.split(k) for k in record.seeds} if record is not None else {}
    ranges = {**{k: r for k, r in recorded_ranges.items() if r is not None}, "test": test}
    build = split_aware(name, kwargs, ranges)
    build(test[0])  # a bad name or argument: exit 2 now
    argv = ["planner", "learn", "--improve", str(improve_dir), *[a for log in logs for a in ("--logs", str(log))],
            "--minutes", f"{minutes:g}", *(["--steps", str(steps)] if steps is not None else []),
            *(["--seed", str(seed)] if seed is not None else []),
            *(["--device", device] if device != "cpu" else []),
            *(["--env", name, *[a for item in env_args or [] for a in ("--env-arg", item)]] if given_env else [])]
    report = improve(build, model_dir=improve_dir, logs=logs, minutes=minutes,
                     steps=steps, test_seeds=test, seed=seed, progress=lambda line: err.print(line, markup=False),
                     command=shlex.join(argv), device=device)
    out.print(f"{'model':<8} {'steps':>7} {'next EM':>9} {'precond':>9} {'solved':>9} {'mean plan length':>17}")
    for label, m in (("before", report.before), ("after", report.after)):
        o = m.fidelity.overall
        solved = f"{m.planning.solved}/{m.planning.total}"
        length = "n/a" if math.isnan(m.planning.mean_plan_length) else f"{m.planning.mean_plan_length:.1f}"
        out.print(f"{label:<8} {m.steps:>7} {o['next_state_exact_match']:>9.2%} {o['precondition_accuracy']:>9.2%} "
                  f"{solved:>9} {length:>17}")
    f = report.folded
    out.print(f"folded {f.steps} real steps ({f.divergences} diverged, written {f.weight}x each); training records "
              f"{report.records_before} -> {report.records_after}")
    out.print(f"model {report.model} (the model before: {report.kept}); card {report.card}; total "
              f"{report.total_seconds:.0f} s")


@app.command("quantize")
def quantize_model(
    model: Annotated[Path, typer.Argument(help="A float GGUF world model (F32 or F16), e.g. DIR/model-f32.gguf.")],
    out_path: Annotated[Path | None, typer.Option(
        "--out", help="Where the quantized model goes (default: beside MODEL, -f32 replaced by -q8_0, or "
                      "-q8_0 added).")] = None,
    kind: Annotated[str, typer.Option(help="q8_0 (default) or q4_0.")] = "q8_0",
    compare: Annotated[Path | None, typer.Option(
        "--compare", help="A transition log (JSONL): predict its first --sample transitions with both models "
                          "and say how often they agree.")] = None,
    sample: Annotated[int, typer.Option(help="Transitions of --compare to predict.")] = 300,
) -> None:
    """Quantize a float GGUF world model with llama.cpp (what planner train does after training;
    for a model trained with --no-quantize on a machine without llama.cpp, when its checkpoint
    stayed there), and compare the two on a log."""
    from planner.data.collect import read_records
    from planner.io import atomic_output
    from planner.training.export import compare_models
    from planner.world.engine import LlamaEngine
    from planner.world.gguf_io import quantize, tensor_types

    if not model.is_file():
        raise ConfigError(f"no model at {model}" if not model.exists() else f"{model} is not a file")
    if sample < 1:
        raise ConfigError(f"--sample must be at least 1, got {sample}")
    if compare is not None:
        if not compare.is_file():
            raise ConfigError(f"--compare {compare}: no such transition log")
        if not read_records(compare, limit=1):  # a corrupt log is named here too, before any writing
            raise ConfigError(f"--compare {compare} holds no transitions")
    quantized = sorted(set(tensor_types(model).values()) - {"F32", "F16", "BF16"})
    if quantized:
        raise ConfigError(f"{model} is already quantized ({', '.join(quantized)}); name a float (F32 or F16) model")
    if out_path is None:
        stem = model.name.removesuffix(".gguf")
        name = stem[:-len("-f32")] if stem.endswith("-f32") else stem
        out_path = model.with_name(f"{name}-{kind}.gguf")
    _check_output("--out", out_path)
    if out_path.resolve() == model.resolve():
        raise ConfigError(f"--out {out_path} is the model itself; name another file")
    # written beside --out and put in its place only once llama.cpp loads it and the comparison
    # is done: a failure leaves an existing --out as it was
    with atomic_output(out_path) as tmp:
        quantize(model, tmp, kind=kind)
        LlamaEngine(tmp, n_ctx=64, n_seq_max=1).close()  # a file llama.cpp cannot load is not a model
        compared = compare_models(model, tmp, compare, sample=sample) if compare is not None else None
    out.print(f"wrote {out_path} ({out_path.stat().st_size / 1e6:.2f} MB, {kind})")
    if compared is not None:
        agree, checked = compared
        out.print(f"{kind} agrees with {model.name} on {agree} of {checked} predictions ({agree / checked:.2%}) "
                  f"of {compare}")


@app.command("eval")
def eval_batch(
    out_path: Annotated[Path, typer.Option(
        "--out", help="Results (JSONL): a header, then one line per episode, appended as each finishes. Running the "
                      "same command again resumes: jobs already recorded are skipped (those recorded with an error "
                      "run again); a file written with another environment, model or configuration is refused.")],
    paths: Annotated[list[Path] | None, typer.Argument(
        help="DOMAIN.pddl, then PROBLEM.pddl files, folders (their .pddl files but the domain) or glob patterns "
             "(quoted: 'probs/p*.pddl'); or give --env and --seeds.")] = None,
    env_name: Annotated[str | None, typer.Option("--env", help=ENV_HELP)] = None,
    env_args: Annotated[list[str] | None, typer.Option("--env-arg", help=ENV_ARG_HELP)] = None,
    seeds: Annotated[str | None, typer.Option(
        help="With --env: environment seeds A-B (ends inclusive); one episode each, as planner solve --env ENV "
             "--seed S plays it.")] = None,
    seed: Annotated[int | None, typer.Option(
        help="With PDDL files: the seed of every episode's reset and search ties (default 0).")] = None,
    workers: Annotated[int | None, typer.Option(help=WORKERS_HELP)] = None,
    ray: Annotated[str | None, typer.Option("--ray", help=RAY_HELP)] = None,
    oracle: Annotated[bool, typer.Option("--oracle", help="Use the exact model.")] = False,
    model: Annotated[Path | None, typer.Option(
        "--model", help="GGUF world model (default: the shipped model for the problem's domain).")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="TOML configuration of every episode (default: planner solve's).")] = None,
    search: Annotated[SearchName | None, typer.Option(help="Search algorithm.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Most real steps per episode.")] = None,
    time_limit: Annotated[float | None, typer.Option(
        help="Seconds per search (a limit makes results depend on the machine's load).")] = None,
    threads: Annotated[int | None, typer.Option(help="llama.cpp CPU threads per worker (default 1).")] = None,
    gpu_layers: Annotated[int | None, typer.Option(help=GPU_LAYERS_HELP)] = None,
    votes: Annotated[int | None, typer.Option(help=VOTES_HELP)] = None,
    vote_below: Annotated[float | None, typer.Option(help=VOTE_BELOW_HELP)] = None,
    server: Annotated[str | None, typer.Option("--server", help=SERVER_HELP + " Every worker asks it.")] = None,
    reference: Annotated[bool, typer.Option(
        "--reference/--no-reference", help="Compute each problem's reference plan length: optimal (A*) for PDDL "
                                           "problems, the environment's gold or optimal path otherwise.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object (last line).")] = False,
    verbose: Annotated[int, typer.Option("-v", count=True, help="More log output (-v, -vv).")] = 0,
) -> None:
    """Play many episodes at once — environment seeds (--env, --seeds) or PDDL problem files — each
    as planner solve plays it (plan with the world model, act in the real environment, replan on
    divergence), on local worker processes or Ray; append one result line per episode and print a
    summary. Exit code 0 when every job ran (unsolved episodes included), 1 when one raised."""
    from planner.env.registry import make
    from planner.scale.eval import BatchInterrupted, EvalSettings, evaluate_batch, problem_jobs, seed_jobs
    from planner.scale.executor import make_executor
    from planner.scale.progress import JobProgress

    configure_logging(verbose)
    _check_one_model(oracle, model, server)
    if model is not None and not model.is_file():
        raise ConfigError(f"model file not found: {model}")
    _check_output("--out", out_path)
    executor = make_executor(workers=workers, ray=ray)  # a bad count, or Ray missing: exit 2 now
    base = load_config(config) if config is not None else PlannerConfig()
    kind = "oracle" if oracle else ("gguf" if model is not None else None)
    cfg = base.updated(search=dict(algorithm=_value(search), time_limit_s=time_limit, seed=seed),
                       source=_options_source(config), agent=dict(max_steps=max_steps),
                       model=dict(kind=kind, path=model.resolve() if model is not None else None, n_threads=threads,
                                  n_gpu_layers=gpu_layers, server=server, votes=votes, vote_below=vote_below))
    _check_vote_below(vote_below, cfg.model.votes)
    if env_name is not None:
        if paths:
            raise ConfigError(f"give either PDDL files or --env, not both (got {paths[0]} and --env {env_name})")
        if seeds is None:
            raise ConfigError("--env needs --seeds A-B (the environment seeds to play)")
        if seed is not None:
            raise ConfigError("--seed is for PDDL files; with --env the seeds are --seeds A-B")
        kwargs = parse_env_args(env_args)
        jobs = seed_jobs(_parse_seed_span(seeds))
        settings = EvalSettings(config=cfg, env=env_name, env_args=kwargs, reference=reference)
        inputs: list[Path] = []

        def probe(job: Any) -> Environment:
            return make(env_name, seed=job.seed, **kwargs)
    else:
        if env_args:
            raise ConfigError(f"--env-arg {env_args[0]} needs --env NAME|PATH.py:FACTORY")
        if seeds is not None:
            raise ConfigError("--seeds needs --env; PDDL files are the jobs themselves")
        if not paths or len(paths) < 2:
            raise ConfigError("give DOMAIN.pddl and at least one PROBLEM (a file, a folder or a glob pattern), "
                              "or --env NAME --seeds A-B")
        domain = paths[0]
        if not domain.is_file():
            raise ConfigError(f"domain file not found: {domain}")
        from planner.env.pddl import parse_domain, read_pddl_file

        parse_domain(read_pddl_file(domain, "domain"), source=str(domain))  # a malformed domain: exit 2 now
        problems = _problem_arguments(paths[1:], domain=domain)
        jobs = problem_jobs(problems, seed=cfg.search.seed)
        settings = EvalSettings(config=cfg, domain=str(domain.resolve()), reference=reference)
        inputs = [domain, *problems]

        def probe(job: Any) -> Environment:
            return PDDLEnvironment(domain, job.problem)
    _distinct_from_inputs("--out", out_path, inputs + ([model] if model is not None else []))
    settings = _checked_settings(settings, jobs, probe)
    summary = None
    try:
        with JobProgress(err, "episodes") as bar:
            summary = evaluate_batch(settings, jobs, results=out_path, executor=executor, progress=bar)
    except BatchInterrupted as stop:
        out.print(stop.summary.table(), markup=False)
        err.print(f"interrupted: {stop.summary.done} of {stop.summary.jobs} jobs are recorded in {out_path}; run the "
                  "same command again to run the rest", markup=False, soft_wrap=True)
        if as_json:
            print(json.dumps(_finite({**stop.summary.to_dict(), "interrupted": True})), flush=True)
        raise KeyboardInterrupt from None
    out.print(summary.table(), markup=False)
    for line in summary.errors[:10]:
        err.print(f"  {line}", markup=False, soft_wrap=True)
    if len(summary.errors) > 10:
        err.print(f"  … and {len(summary.errors) - 10} more (see {out_path})", markup=False, soft_wrap=True)
    if as_json:
        print(json.dumps(_finite(summary.to_dict())), flush=True)
    if summary.errors:
        raise PlannerError(f"{len(summary.errors)} of {summary.jobs} jobs raised an error (recorded in {out_path}; "
                           f"running the same command again retries them): {summary.errors[0]}")


def _problem_arguments(items: list[Path], *, domain: Path) -> list[Path]:
    """The PDDL problem files named by ``planner eval``'s arguments after the domain: files,
    folders (their ``*.pddl`` files but the domain) and glob patterns, in the order given
    (each folder or pattern sorted). :class:`ConfigError` naming an argument that names none."""
    from planner.env.registry import problem_files

    found: list[Path] = []
    for item in items:
        if item.is_file():
            found.append(item)
            continue
        try:
            found.extend(problem_files(item, domain=domain))
        except ConfigError:
            what = ("a folder without .pddl files" if item.is_dir()
                    else "no such file, and no file matches it as a pattern")
            raise ConfigError(f"PROBLEM {item}: {what} (name problem files, a folder of them, or a quoted glob "
                              "pattern such as 'probs/p*.pddl')") from None
    skip = domain.resolve()
    files = [f for f in found if f.resolve() != skip]
    if not files:
        raise ConfigError(f"no problem file besides the domain {domain} among {', '.join(map(str, items))}")
    return files


PROBE_JOBS = 3
"""Jobs whose environment ``planner eval`` builds before starting, until one builds: a bad
environment name or argument, or a model that cannot serve it, is a usage error (exit 2) found
at once; an environment that fails for some seeds only is those jobs' error."""


def _checked_settings(settings: Any, jobs: list[Any], probe: Callable[[Any], Environment]) -> Any:
    """``settings`` checked against the first job whose environment builds (of the first
    :data:`PROBE_JOBS`): the model fits it (:func:`check_model_fits`) and the shipped default
    model is resolved to its file (:func:`planner.scale.eval.resolve_model`)."""
    import dataclasses

    from planner.scale.eval import resolve_model

    for job in jobs[:PROBE_JOBS]:
        try:
            env = probe(job)
        except PlannerError as exc:  # a bad name or argument (ConfigError) is the user's; the rest, the job's
            if isinstance(exc, ConfigError):
                raise
            logging.getLogger(__name__).warning("probe failed for job %s: %s", job.id, _first_line(exc))
            continue
        m = settings.config.model
        check_model_fits(m.kind, env, path=m.path)
        return dataclasses.replace(settings, config=resolve_model(settings.config, env))
    return settings


@app.command("eval-model")
def eval_model(
    model: Annotated[Path, typer.Argument(help="GGUF world model.")],
    data: Annotated[Path | None, typer.Option(
        "--data", help="Transition log (JSONL) to score against (or give --env).")] = None,
    env_name: Annotated[str | None, typer.Option(
        "--env", help="Score against fresh episodes of this environment instead of a log (NAME or "
                      "PATH.py:FACTORY): collect from --seeds, then play one planning episode per seed.")] = None,
    env_args: Annotated[list[str] | None, typer.Option("--env-arg", help=ENV_ARG_HELP)] = None,
    seeds: Annotated[str | None, typer.Option(
        help="With --env: environment seeds A-B (ends inclusive; default 2000-2049, planner learn's held-out "
             "test seeds).")] = None,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="With --env: keep the collected transitions in DIR/test.jsonl (replaced; default: a "
                      "temporary folder).")] = None,
    episodes_per_seed: Annotated[int | None, typer.Option(
        help="With --env: exploration episodes per seed (default 3).")] = None,
    max_steps: Annotated[int | None, typer.Option(
        help="With --env: most tries per exploration episode (default 60).")] = None,
    solve: Annotated[bool | None, typer.Option(
        "--solve/--no-solve", help="With --env: also play one planning episode per seed, as planner solve "
                                   "--env ENV --seed S --model MODEL does (default: yes).")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="TOML configuration: with --env, of the planning episodes (default: planner solve's, "
                         "with a time limit per search); with --data, its [model] votes, vote_below and "
                         "n_threads apply unless the options give them.")] = None,
    limit: Annotated[int | None, typer.Option(help="Use only the first N transitions.")] = None,
    max_episodes: Annotated[int | None, typer.Option(help="Episodes for multi-step consistency.")] = None,
    threads: Annotated[int | None, typer.Option(help="llama.cpp CPU threads.")] = None,
    gpu_layers: Annotated[int, typer.Option(help=GPU_LAYERS_HELP)] = 0,
    votes: Annotated[int | None, typer.Option(help=VOTES_HELP + " With --env and --config: the file's "
                                              "[model] votes unless given.")] = None,
    vote_below: Annotated[float | None, typer.Option(help=VOTE_BELOW_HELP)] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Count answers still invalid after retries as "
                                         "errors instead of reading them as 'not applicable'.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object as the last line.")] = False,
) -> None:
    """Fidelity of a world model on recorded transitions (--data LOG) or on fresh episodes of an
    environment (--env): precondition, effect, next state, done, and multi-step consistency,
    per number of objects; with --env also planning success (solved seeds, plan lengths).

    By default the model is scored as the planner uses it: an answer that still fails
    validation after its retries is read as "not applicable" (and counted in the report)."""
    _check_gpu_layers(gpu_layers)
    if (data is None) == (env_name is None):
        raise ConfigError("give either --data LOG (recorded transitions) or --env NAME|PATH.py:FACTORY (fresh "
                          "episodes), not " + ("both" if data is not None else "neither"))
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    if max_episodes is not None and max_episodes < 0:
        raise ConfigError(f"--max-episodes must be 0 or more, got {max_episodes}")
    if data is not None:
        env_only = {"--env-arg": env_args, "--seeds": seeds, "--out": out_dir, "--episodes-per-seed": episodes_per_seed,
                    "--max-steps": max_steps, "--solve/--no-solve": solve}
        given = next((flag for flag, value in env_only.items() if value is not None), None)
        if given is not None:
            raise ConfigError(f"{given} needs --env (it is about fresh episodes, not the log --data {data})")
        base = load_config(config) if config is not None else PlannerConfig()
        voting = base.updated(source=_options_source(config),  # out of range, or clashing with the file
                              model={"votes": votes, "vote_below": vote_below, "n_threads": threads}).model
        _check_vote_below(vote_below, voting.votes)
        threads = voting.n_threads
        if not data.is_file():
            raise ConfigError(f"data file not found: {data}")
        records = _read_transitions(data, limit=limit)
        if not records:
            raise ConfigError(f"no transitions in {data}")
        report = _fidelity_of(model, records, threads=threads, gpu_layers=gpu_layers, strict=strict,
                              max_episodes=max_episodes, votes=voting.votes, vote_below=voting.vote_below)
        if as_json:
            print(json.dumps(_finite({"model": str(model), "data": str(data), **report.to_dict()})))
        else:
            out.print(f"{model} on {data}")
            out.print(report.table())
        return
    assert env_name is not None
    _eval_model_env(model, env_name, env_args, seeds=seeds or "2000-2049", out_dir=out_dir,
                    episodes_per_seed=3 if episodes_per_seed is None else episodes_per_seed,
                    max_steps=60 if max_steps is None else max_steps, solve=solve is not False, config=config,
                    limit=limit, max_episodes=max_episodes, threads=threads, gpu_layers=gpu_layers, strict=strict,
                    as_json=as_json, votes=votes, vote_below=vote_below)


def _read_transitions(path: Path, *, limit: int | None = None) -> list[Any]:
    """The transition records of ``path`` (see :func:`planner.data.collect.read_records`)."""
    from planner.data.collect import read_records as read

    return read(path, limit=limit)


def _fidelity_of(model: Path, records: list[Any], *, threads: int | None, strict: bool,
                 max_episodes: int | None, votes: int, vote_below: float, gpu_layers: int = 0) -> Any:
    """The fidelity report of ``model`` on ``records``, as the planner uses the model (or
    ``strict``), asked under ``votes`` numberings of the objects."""
    from planner.data.fidelity import evaluate
    from planner.world.llama import ProblemBinder

    bind = ProblemBinder(model, n_threads=threads, n_gpu_layers=gpu_layers, mode="prefix",
                         on_invalid="raise" if strict else "reject", votes=votes, vote_below=vote_below)
    try:
        with err.status(f"evaluating on {len(records)} transitions…"):
            report = evaluate(records, bind, max_episodes=max_episodes)
        report.votes, report.vote_below = votes, vote_below
        if bind.model is not None:
            report.invalid_rejected = bind.model.stats.invalid
            report.split_votes = bind.model.stats.split_votes
    finally:
        if bind.model is not None:
            bind.model.close()
    return report


def _eval_model_env(model: Path, env_name: str, env_args: list[str] | None, *, seeds: str, out_dir: Path | None,
                    episodes_per_seed: int, max_steps: int, solve: bool, config: Path | None, limit: int | None,
                    max_episodes: int | None, threads: int | None, strict: bool, as_json: bool,
                    gpu_layers: int = 0, votes: int | None = None, vote_below: float | None = None) -> None:
    """``planner eval-model --env``: collect fresh transitions from the seeds (into a temporary
    folder, or ``--out``), score the model on them, then plan once per seed."""
    import tempfile

    from planner.data.explore import collect_from_env
    from planner.data.planning_eval import DEFAULT_CONFIG, evaluate_planning
    from planner.env.registry import make

    span = _parse_seed_span(seeds)
    kwargs = parse_env_args(env_args)
    if not model.is_file():
        raise ConfigError(f"model file not found: {model}")
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is not a folder")
    plan_config = (load_config(config) if config is not None else DEFAULT_CONFIG).updated(
        source=_options_source(config),
        model=dict(n_threads=threads, n_gpu_layers=gpu_layers, votes=votes, vote_below=vote_below))
    _check_vote_below(vote_below, plan_config.model.votes)
    make(env_name, seed=span[0], **kwargs)  # a bad name or argument: exit 2 now

    def make_one(s: int) -> Environment:
        return make(env_name, seed=s, **kwargs)

    with tempfile.TemporaryDirectory(prefix="planner-eval-") as scratch:
        folder = out_dir if out_dir is not None else Path(scratch)
        log_path = folder / "test.jsonl"
        log_path.unlink(missing_ok=True)
        with err.status(f"collecting from {env_name} seeds {seeds}…"):
            stats = collect_from_env(make_one, out_dir=folder, seeds={"test": span},
                                     episodes_per_seed=episodes_per_seed, max_steps=max_steps,
                                     domain=Path(env_name.split(":")[0]).stem)
        records = _read_transitions(log_path, limit=limit)
        if not records:
            raise ConfigError(f"no transitions collected from {env_name} seeds {seeds} "
                              f"(--episodes-per-seed {episodes_per_seed})")
        report = _fidelity_of(model, records, threads=threads, gpu_layers=gpu_layers, strict=strict,
                              max_episodes=max_episodes, votes=plan_config.model.votes,
                              vote_below=plan_config.model.vote_below)
    planning = None
    if solve:
        done: list[int] = []
        with err.status(f"planning on {len(span)} seeds…") as status:
            def progress(episode: Any) -> None:
                done.append(episode.seed)
                status.update(f"planning: {len(done)}/{len(span)} seeds played")

            planning = evaluate_planning(make_one, model, seeds=span, config=plan_config, build=build_model,
                                         progress=progress)
    kept = str(log_path) if out_dir is not None else None
    if as_json:
        print(json.dumps(_finite({"model": str(model), "data": kept, "env": env_name, "seeds": seeds,
                                  "collected": stats["test"].transitions, **report.to_dict(),
                                  "planning": planning.to_dict() if planning is not None else None})))
        return
    where = f" -> {log_path}" if kept else ""
    out.print(f"{model} on {env_name} seeds {seeds}: {stats['test'].transitions} fresh transitions from "
              f"{stats['test'].episodes} exploration episodes{where}")
    out.print(report.table())
    if planning is not None:
        out.print(f"planning: {planning.line()}")
        out.print(planning.table())


MAX_SEED = 2**32 - 1
MAX_SEEDS_PER_SPLIT = 1_000_000


def _parse_seed_ranges(text: str) -> dict[str, range]:
    """``"train=0-99,val=1000-1019,test=2000-2049"`` → split → range (ends inclusive); seeds in
    0..2**32-1, at most 1,000,000 a split, each split once."""
    out: dict[str, range] = {}
    for item in text.split(","):
        split, _, span = item.partition("=")
        seeds = _seed_range(span, item, form="look like train=0-99,test=1000-1049")
        name = split.strip()
        if name in out:
            raise ConfigError(f"--seeds names split {name!r} twice")
        out[name] = seeds
    return out


def _parse_seed_span(text: str) -> range:
    """``"2000-2049"`` (or one seed) → range (ends inclusive), bounded as a split of
    :func:`_parse_seed_ranges`."""
    form = "be A-B (ends inclusive), e.g. 2000-2049"
    if not re.fullmatch(r"\s*\d+\s*(-\s*\d+\s*)?", text):
        raise ConfigError(f"--seeds must {form}, got {text!r}")
    return _seed_range(text, text, form=form)


def _seed_range(span: str, item: str, *, form: str) -> range:
    """``"A-B"`` → ``range(A, B + 1)``: seeds in 0..2**32-1, at most 1,000,000; errors quote
    ``item`` (what the user wrote) and say the ``form`` expected."""
    lo, _, hi = span.partition("-")
    try:
        first, last = int(lo), int(hi or lo)
    except ValueError:
        raise ConfigError(f"--seeds must {form}, got {item!r}") from None
    if not 0 <= first <= last <= MAX_SEED:
        raise ConfigError(f"--seeds {item!r}: a range runs from a lower to a higher seed within 0..{MAX_SEED}")
    if last - first + 1 > MAX_SEEDS_PER_SPLIT:
        raise ConfigError(f"--seeds {item!r}: {last - first + 1:,} seeds, more than {MAX_SEEDS_PER_SPLIT:,} a split")
    return range(first, last + 1)


def _collect_env(out_dir: Path, env_name: str, env_args: list[str] | None, *, seeds: str, episodes_per_seed: int,
                 max_steps: int, behaviour: list[str] | None, demos: Path | None, seed: int,
                 executor: Any = None) -> None:
    """``planner collect --env``: explore an environment through reset and step only (with
    ``executor``: one job per seed, see :mod:`planner.scale.collect`)."""
    from planner.data.explore import DEFAULT_BEHAVIOURS, collect_from_env
    from planner.env.registry import split_aware

    kwargs = parse_env_args(env_args)
    ranges = _parse_seed_ranges(seeds)
    build = split_aware(env_name, kwargs, ranges)
    build(list(ranges.values())[-1][0])  # a bad name or argument: exit 2 now

    demonstrations = None if demos is None else _read_demos(demos)
    behaviours = tuple(behaviour or DEFAULT_BEHAVIOURS)
    if executor is not None:
        from planner.data.explore import _check_request
        from planner.scale.collect import EnvCollect, env_jobs

        _check_request(cast(Any, ranges), episodes_per_seed, max_steps, behaviours, demonstrations)  # exit 2 now
        task = EnvCollect(env=env_name, env_args=kwargs, episodes_per_seed=episodes_per_seed, max_steps=max_steps,
                          behaviours=behaviours, demonstrations=dict(demonstrations or {}),
                          domain=Path(env_name.split(":")[0]).stem, seed=seed)
        _print_collected(out_dir, _collect_jobs(task, env_jobs(ranges), out_dir, None, None, executor=executor),
                         unit="seeds")
        return
    with err.status(f"exploring {env_name}…"):
        stats = collect_from_env(build, out_dir=out_dir,
                                 seeds=cast(Any, ranges),  # split names checked there
                                 episodes_per_seed=episodes_per_seed, max_steps=max_steps,
                                 behaviours=cast(Any, behaviours),  # likewise behaviours
                                 demonstrations=demonstrations, domain=Path(env_name.split(":")[0]).stem, seed=seed)
    for split, st in stats.items():
        out.print(f"{split:>5}: {st.seeds} seeds, {st.episodes} episodes, {st.transitions} transitions "
                  f"({st.applicable} applicable, {st.done} reaching the goal) -> {out_dir / (split + '.jsonl')}")


def _read_demos(path: Path) -> dict[int, list[str]]:
    """``--demos``: a JSON object of seed → list of action names (:class:`ConfigError` naming the
    file and what is wrong)."""
    shape = 'a JSON object {"SEED": ["(action a)", ...]}'
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--demos {path}: cannot read it ({exc})") from None
    except (ValueError, RecursionError):
        raise ConfigError(f"--demos {path}: not JSON (or nested too deeply); expected {shape}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--demos {path}: expected {shape}, got a JSON {type(data).__name__}")
    out: dict[int, list[str]] = {}
    for key, actions in data.items():
        try:
            seed = int(key)
        except ValueError:
            raise ConfigError(f"--demos {path}: key {key!r} is not a seed (a whole number)") from None
        if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
            raise ConfigError(f"--demos {path}: seed {key} must map to a list of action names (strings), "
                              f"got {json.dumps(actions)[:120]}")
        out[seed] = actions
    return out


def _distinct_from_inputs(flag: str, output: Path | None, inputs: list[Path]) -> None:
    """Refuse an output path that is one of the inputs: writing it would destroy what is read."""
    if output is None:
        return
    target = output.resolve()
    for path in inputs:
        if path.exists() and path.resolve() == target:
            raise ConfigError(f"{flag} {output} is also an input; write somewhere else")


@app.command()
def synth(
    env_name: Annotated[str, typer.Option("--env", help=ENV_HELP)],
    out_path: Annotated[Path, typer.Option("--out", help="Transition log (JSONL) to append the synthetic records to.")],
    model: Annotated[Path | None, typer.Option(help="GGUF world model to imagine with (a PDDL environment).")] = None,
    oracle: Annotated[bool, typer.Option(
        "--oracle", help="Imagine with the exact model (the environment's simulate).")] = False,
    env_args: Annotated[list[str] | None, typer.Option("--env-arg", help=ENV_ARG_HELP)] = None,
    seeds: Annotated[str, typer.Option(help="Environment seeds, e.g. 0-9 (ends inclusive).")] = "0-9",
    episodes: Annotated[int, typer.Option("--episodes", help="Synthetic trajectories per seed.")] = 1,
    max_steps: Annotated[int, typer.Option(help="Most imagined steps per trajectory.")] = 20,
    policy: Annotated[str, typer.Option(help="random or greedy (highest predicted goal progress).")] = "random",
    anchor_every: Annotated[int | None, typer.Option(
        help="Replace the imagined state by the real one every this many steps (default: never).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the policy's random choices.")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
    workers: Annotated[int | None, typer.Option(help=WORKERS_HELP + " The records are the same as without: "
                                                "each seed's stay together, seeds in the order they finish.")] = None,
    ray: Annotated[str | None, typer.Option("--ray", help=RAY_HELP)] = None,
    threads: Annotated[int | None, typer.Option(
        help="With --workers or --ray: llama.cpp CPU threads per worker (default 1).")] = None,
    gpu_layers: Annotated[int, typer.Option(help=GPU_LAYERS_HELP)] = 0,
) -> None:
    """Roll a policy out inside the world model only, append the imagined trajectories (marked
    synthetic) to a log, replay each in the real environment and report the consistency ratio."""
    from planner.data.synth import synthesize
    from planner.env.registry import make

    if oracle == (model is not None):
        raise ConfigError("choose one of --oracle and --model PATH.gguf")
    _check_gpu_layers(gpu_layers)
    if model is not None and not model.is_file():
        raise ConfigError(f"--model {model}: no such file")
    _check_output("--out", out_path)
    span = _parse_seed_span(seeds)
    kwargs = parse_env_args(env_args)
    check_model_fits("oracle" if oracle else "gguf", make(env_name, seed=span[0], **kwargs), path=model)  # exit 2 now
    if workers is not None or ray is not None:
        _synth_jobs(env_name, kwargs, out_path, model=model, seeds=span, episodes=episodes, max_steps=max_steps,
                    policy=policy, anchor_every=anchor_every, seed=seed, workers=workers, ray=ray, threads=threads,
                    gpu_layers=gpu_layers, json_out=json_out)
        return
    if threads is not None:
        raise ConfigError("--threads is for --workers or --ray (each worker's llama.cpp threads)")

    building = {"seed": 0}  # the seed of the environment model_for is asked about (made just before)

    def make_one(s: int) -> Environment:
        building["seed"] = s
        return make(env_name, seed=s, **kwargs)

    def model_for(env: Environment) -> WorldModel:
        if oracle:
            return OracleWorldModel(env)  # type: ignore[arg-type]  # a Simulator, checked above
        from planner.world.factory import load_gguf_world_model

        # a learned model binds the problem of the seed's own reset, as the episodes start there
        return load_gguf_world_model(env, path=model, n_gpu_layers=gpu_layers, reset_seed=building["seed"])

    with err.status(f"imagining in {env_name}…"):
        report = synthesize(make_one, model_for, seeds=span,
                            episodes_per_seed=episodes, max_steps=max_steps,
                            policy=cast(Any, policy),  # checked there
                            anchor_every=anchor_every, out_path=out_path, seed=seed)
    if json_out:
        print(json.dumps(_finite(report.model_dump())))
    else:
        out.print(f"{report.line()} -> {out_path}")


def _synth_jobs(env_name: str, kwargs: dict[str, Any], out_path: Path, *, model: Path | None, seeds: range,
                episodes: int, max_steps: int, policy: str, anchor_every: int | None, seed: int, workers: int | None,
                ray: str | None, threads: int | None, json_out: bool, gpu_layers: int = 0) -> None:
    """``planner synth --workers N`` / ``--ray ADDRESS``: one job per seed (see
    :mod:`planner.scale.synth`)."""
    from planner.data.synth import _check_request
    from planner.scale.executor import make_executor
    from planner.scale.progress import JobProgress
    from planner.scale.synth import SynthTask, synthesize_jobs

    _check_request(list(seeds), episodes, max_steps, policy, anchor_every, "train")  # exit 2 before any job
    executor = make_executor(workers=workers, ray=ray)
    task = SynthTask(env=env_name, env_args=kwargs, model=str(model.resolve()) if model is not None else None,
                     episodes_per_seed=episodes, max_steps=max_steps, policy=policy, anchor_every=anchor_every,
                     seed=seed, threads=threads, gpu_layers=gpu_layers)
    with JobProgress(err, "seeds") as bar:
        bar.begin(total=len(seeds))
        report = synthesize_jobs(task, seeds, out_path=out_path, executor=executor, progress=bar)
    if json_out:
        print(json.dumps(_finite(report.model_dump())))
    else:
        plural = "s" if executor.workers != 1 else ""
        out.print(f"{report.line()} -> {out_path} ({executor.name}, {executor.workers} worker{plural})")


@app.command()
def schema(
    logs: Annotated[list[Path], typer.Argument(help="Transition logs (JSONL).")],
    pddl_out: Annotated[Path | None, typer.Option("--pddl-out", help="Write the learned PDDL domain here.")] = None,
    compare: Annotated[Path | None, typer.Option(help="A PDDL domain to compare the learned one with.")] = None,
) -> None:
    """Infer predicates, objects, action schemas and STRIPS operators from transition logs
    (no PDDL needed); print them, optionally write them as a PDDL domain or compare them with one."""
    from planner.data.collect import read_records
    from planner.data.schema import infer_schema, schema_differences
    from planner.env.pddl import parse_domain, read_pddl_file
    from planner.io import atomic_write_text
    from planner.world.signature import domain_signature

    _check_output("--pddl-out", pddl_out)
    _distinct_from_inputs("--pddl-out", pddl_out, logs)
    for path in logs:
        if not path.is_file():
            raise ConfigError(f"transition log {path} " + ("is not a file" if path.exists() else "not found"))
    learned = infer_schema([r for path in logs for r in read_records(path)])
    out.print(json.dumps(learned.model_dump(mode="json"), indent=2))
    out.print(f"refusals explained by the learned preconditions: {learned.explained}/{learned.inapplicable}")
    for name, why in learned.not_strips.items():
        err.print(f"not STRIPS: {name}: {why.reason} (e.g. {why.action})")
    if pddl_out is not None:
        atomic_write_text(pddl_out, learned.pddl_domain())
    if compare is not None:
        diffs = schema_differences(learned, domain_signature(parse_domain(read_pddl_file(compare, "domain"),
                                                                          source=str(compare))))
        out.print(f"the learned domain equals {compare}" if not diffs else "\n".join(diffs))


def _domain_schemas(domain: Path | None) -> tuple[str, dict[str, int], dict[str, int], dict[str, Any]]:
    """(name, predicate arities, action arities, signature) of ``domain`` (default: Blocksworld)."""
    from planner.env.blocksworld import DOMAIN_PDDL
    from planner.env.pddl import domain_schemas, parse_domain, read_pddl_file
    from planner.world.signature import domain_signature

    if domain is None:
        text, source = DOMAIN_PDDL, "the built-in Blocksworld domain"
    else:
        text, source = read_pddl_file(domain, "domain"), str(domain)
    name, predicates, actions = domain_schemas(text, source=source)
    return name, predicates, actions, domain_signature(parse_domain(text, source=source)).to_json()


@app.command()
def generate(
    blocks: Annotated[int, typer.Argument(help="Number of blocks (2..50).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the PDDL files.")] = Path("problems"),
    seed: Annotated[int, typer.Option(help="Problem seed.")] = 0,
) -> None:
    """Write a random Blocksworld problem (and the domain) as PDDL."""
    domain, problem = write_problem(out_dir, blocks, seed=seed)
    out.print(f"{domain}\n{problem}")


class TrajectoryFormat(str, Enum):
    sharegpt = "sharegpt"
    openai = "openai"
    alpaca = "alpaca"


@app.command("export")
def export_logs(
    logs: Annotated[list[Path], typer.Argument(help="Transition logs (JSONL) to export.")],
    fmt: Annotated[TrajectoryFormat, typer.Option(
        "--format", help="sharegpt or openai: JSONL, one conversation per episode; alpaca: a JSON array, "
                         "one record per step.")],
    out_path: Annotated[Path, typer.Option("--out", help="File to write (replaced atomically).")],
) -> None:
    """Write transition logs as the chat trajectories fine-tuning tools read (LLaMA-Factory, TRL):
    system = initial state and goal, user = action, assistant = what the environment answered."""
    from planner.data.collect import TransitionRecord, read_records
    from planner.data.formats import parse_format, write_trajectories

    _check_output("--out", out_path)
    _distinct_from_inputs("--out", out_path, logs)
    records: list[TransitionRecord] = []
    for log in logs:
        if not log.is_file():
            raise ConfigError(f"transition log not found: {log}")
        records.extend(read_records(log))
    count = write_trajectories(out_path, records, format=parse_format(fmt.value))
    unit = "records (one per step)" if fmt is TrajectoryFormat.alpaca else "conversations"
    out.print(f"wrote {count} {unit} from {len(records)} transitions -> {out_path}")


@app.command("import")
def import_logs(
    files: Annotated[list[Path], typer.Argument(help="Exported trajectories (.jsonl or .json).")],
    out_path: Annotated[Path, typer.Option("--out", help="Transition log (JSONL) to append the records to.")],
    fmt: Annotated[TrajectoryFormat | None, typer.Option(
        "--format", help="Format of the files (default: recognised from each record's keys).")] = None,
) -> None:
    """Read exported trajectories back into a transition log: the exported records, identical.
    Every file is read and checked before anything is written."""
    from planner.data.collect import TransitionRecord
    from planner.data.formats import parse_format, read_trajectories
    from planner.io import JsonlLog

    _check_output("--out", out_path)
    _distinct_from_inputs("--out", out_path, files)
    fmt_name = None if fmt is None else parse_format(fmt.value)
    records: list[TransitionRecord] = []
    for path in files:
        if not path.is_file():
            raise ConfigError(f"trajectory file not found: {path}")
        records.extend(read_trajectories(path, format=fmt_name))
    with JsonlLog(out_path, fsync=False) as log:
        for rec in records:
            log.write(rec)
    out.print(f"read {len(records)} transitions from {len(files)} file(s) -> {out_path}")


@app.command()
def serve(
    model: Annotated[Path, typer.Argument(help="GGUF world model to serve.")],
    host: Annotated[str, typer.Option(
        help="Address to listen on (default: the loopback interface only; 0.0.0.0 opens it to the network).")]
        = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    threads: Annotated[int | None, typer.Option(
        help="llama.cpp CPU threads (default: as the in-process model, one for small models).")] = None,
    gpu_layers: Annotated[int, typer.Option(help=GPU_LAYERS_HELP)] = 0,
) -> None:
    """Serve a GGUF world model over llama.cpp's OpenAI-compatible completions API (llama-cpp-python's
    server: pip install 'planner\\[server]'), for solve, demo and eval --server URL. Runs until
    Ctrl-C (exit code 130); 1 when the server fails."""
    import subprocess

    from planner.world.engine import gpu_offload_supported
    from planner.world.serve import check_port_free, check_server_extra, server_command, server_url, stop

    check_server_extra()
    cmd = server_command(model, host=host, port=port, n_threads=threads, n_gpu_layers=gpu_layers)
    check_port_free(host, port)
    url = server_url(host, port)
    if gpu_layers and not gpu_offload_supported():
        err.print(f"[yellow]--gpu-layers {gpu_layers} ignored: this llama.cpp build has no GPU backend[/]")
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[yellow]listening on {host}: reachable from other machines, with no authentication[/]")
    err.print(f"serving {model} at {url} (planner solve … --server {url}); Ctrl-C stops it", markup=False)
    process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    try:
        code = process.wait()
    except KeyboardInterrupt:
        stop(process)
        raise typer.Exit(130) from None
    err.print(f"[red]the model server stopped with exit code {code}[/]")
    raise typer.Exit(1)


@app.command()
def view(
    log: Annotated[Path, typer.Argument(help="Episode log (JSONL) written by planner solve --log.")],
    out_path: Annotated[Path, typer.Option("-o", "--out", help="HTML file to write (replaced atomically).")],
    tree: Annotated[Path | None, typer.Option(
        "--tree", help="Search tree (GraphML) written by planner solve --tree, to browse in the page.")] = None,
    episode: Annotated[str | None, typer.Option(
        "--episode", help="Episode id to show (default: the last episode of the log).")] = None,
) -> None:
    """Write one self-contained HTML page (no network needed) showing an episode: goal and problem,
    the plans with their imagined states, the real steps with divergences, replans and refusals
    marked, the outcome and, with --tree, the search tree to browse."""
    from planner.view import write_episode_html

    _check_output("--out", out_path)
    _distinct_from_inputs("--out", out_path, [log] + ([tree] if tree is not None else []))
    report = write_episode_html(log, out_path, tree=tree, episode=episode)
    out.print(f"wrote {report.line()}")


INPUT_ERRORS: tuple[type[Exception], ...] = (
    ConfigError, DomainError, ModelLoadError, UnknownActionError, ResumeError, CorruptLogError,
    FileWriteError, EnvironmentCheckError, TrainingDataError, CheckpointError, ContextOverflowError, FormatError,
    SchemaError,
)
"""Errors that mean "fix the input": exit code 2, like a usage error."""

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


MAX_MESSAGE = 1000
"""Longest error line printed (characters): a message quoting input never floods the terminal."""


def _fail(message: str, code: int) -> int:
    text = " ".join(message.split())
    if len(text) > MAX_MESSAGE:
        text = text[:MAX_MESSAGE - 1] + "…"
    print(f"planner: error: {text}", file=sys.stderr)
    return code


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM ends the episode like Ctrl-C: an ``end`` record, then exit code 130."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the command, turning every error into one line and an exit code."""
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # pragma: no cover - not the main thread (embedded use)
        previous = None
    try:
        return _run(argv)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(argv: list[str] | None) -> int:
    command = typer.main.get_command(app)
    try:
        # Without standalone mode the parser returns the code of an ``Exit`` instead of raising.
        code = command.main(args=argv, prog_name="planner", standalone_mode=False)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except INPUT_ERRORS as exc:
        return _fail(_first_line(exc), EXIT_INPUT)
    except PlannerError as exc:
        return _fail(_first_line(exc), EXIT_FAILED)
    except OSError as exc:
        return _fail(f"{type(exc).__name__}: {exc}", EXIT_INPUT)
    except Exception as exc:
        # The command-line parser's own exceptions: usage errors carry a message and an
        # exit code, "exit" carries only the code.
        if hasattr(exc, "format_message"):
            message = exc.format_message()
            if not message.strip():  # no command given: the parser has shown the help
                return _fail("no command given; see the list above", EXIT_INPUT)
            return _fail(message, int(getattr(exc, "exit_code", EXIT_INPUT)))
        if type(exc).__name__ == "Exit" and hasattr(exc, "exit_code"):
            return int(exc.exit_code)
        if type(exc).__name__ == "Abort":
            return _fail("interrupted", EXIT_INTERRUPTED)
        return _fail(f"internal error: {type(exc).__name__}: {exc} (please report it with the command line)",
                     EXIT_FAILED)
    if not isinstance(code, int) or isinstance(code, bool):
        return EXIT_OK
    if code == EXIT_INTERRUPTED:  # the parser turns KeyboardInterrupt into a quiet Exit(130)
        return _fail("interrupted", EXIT_INTERRUPTED)
    return code


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, EnvironmentCheckError) and exc.problems:  # its message lists one problem a line
        return "environment check failed: " + "; ".join(exc.problems)
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
