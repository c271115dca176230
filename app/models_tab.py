"""The Models tab: every preset and pulled model with where it is, its size, what it
needs here and whether that fits; Pull (with progress), Cancel and Delete. Pulling
and deleting go through hub/, what fits through engine/fit."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import gradio as gr

from app.history import user_of
from app.roles import ADMIN_ONLY, may_manage_models
from chat.runtime import Runtime
from engine.limits import check_field
from engine.spec import ModelSpec
from errors import UserError
from models.catalogue import load_registry

COLUMNS = ["model", "status", "size", "needs", "fits here", "vision", "placement"]
ON_SERVER = "on its server"  # a remote model's size and memory: none of it is here
COLUMN_WIDTHS = ["17%", "28%", "8%", "8%", "14%", "6%", "19%"]
PULL_QUEUE = "pull"  # one download at a time, beside the chat's queue


@dataclass
class _Pulls:
    """What is downloading now, for the table, and the switch that cancels it."""

    progress: dict[str, float] = field(default_factory=dict)
    cancel: threading.Event = field(default_factory=threading.Event)


def picker_choices(specs: list[ModelSpec], checks: dict | None = None) -> list[tuple[str, str]]:
    """The chat's model picker: what can run first, with what it can do, then the rest
    as "get more: ..." (the page folds those away, see assets/style.css; the API still
    takes their names and says what each one lacks). `checks` (models/availability.py)
    hold back a remote model its server does not offer now, with why."""
    checks = checks or {}
    more = [(f"get more: {s.label}{_why(s, checks)}", s.name) for s in specs if not runnable(s, checks)]
    return ready_choices(specs, checks) + more


def ready_choices(specs: list[ModelSpec], checks: dict | None = None) -> list[tuple[str, str]]:
    """The models that can run: on this machine first, then endpoints, then hosted."""
    checks = checks or {}
    ready = sorted((s for s in specs if runnable(s, checks)), key=lambda s: WHERE.index(where_it_runs(s)))
    return [(f"{s.label} · {abilities(s)}", s.name) for s in ready]


def runnable(spec: ModelSpec, checks: dict) -> bool:
    """On disk, or (remote) set up and, when its server was asked, ready."""
    check = checks.get(spec.name)
    return spec.available and (check is None or check.ready)


def vision_hint_now(runtime: Runtime) -> str:
    """The vision hint naming the models a picker offers now that see images."""
    from models.catalogue import vision_hint

    specs = list(runtime.registry.specs.values())
    checks = page_checks(specs, runtime.settings.check_servers)
    return vision_hint([s for s in specs if runnable(s, checks)])


def page_checks(specs: list[ModelSpec], enabled: bool = True) -> dict:
    """Every remote model's availability now (its server asked at most every few
    minutes); {} when the settings say no server is asked (check_servers)."""
    from models.availability import check_all

    return check_all(specs) if enabled else {}


def _why(spec: ModelSpec, checks: dict) -> str:
    check = checks.get(spec.name)
    return f" ({check.why})" if check is not None and not check.ready and spec.available else ""


WHERE = ("local", "endpoint", "hosted")


def where_it_runs(spec: ModelSpec) -> str:
    if spec.provider:
        return "hosted"
    return "endpoint" if spec.is_remote else "local"


def abilities(spec: ModelSpec) -> str:
    """'sees images · 32K context · local'"""
    vision = "sees images" if spec.vision else "text only"
    return f"{vision} · {_tokens(spec.n_ctx)} context · {where_it_runs(spec)}"


def _tokens(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:g}M"
    return f"{n // 1024}K" if n % 1024 == 0 else f"{round(n / 1000)}K"


def get_more(specs: list[ModelSpec], checks: dict | None = None) -> str:
    """The fold under a picker: the models not here yet and what each one needs."""
    checks = checks or {}
    missing = [s for s in specs if not runnable(s, checks)]
    if not missing:
        return "Every model in the list is here."
    lines = [f"{len(missing)} more: pull one in the **Models** tab, or `launch.py pull NAME`."]
    for spec in missing:
        size = spec.file_bytes()
        if spec.hf_repo:
            need = f"{size / 1e9:.0f} GB" if size else "pull it"
        elif spec.backend == "transformers":
            need = "its checkpoint folder in the models dir"
        elif spec.available:  # set up, but its server does not offer it now
            need = checks[spec.name].why
        else:
            need = spec.missing()[0]
        lines.append(f"- `{spec.name}` · {need}")
    return "\n".join(lines)


def picker_updates(runtime: Runtime, components: list) -> list:
    """Fresh choices for every picker and fold on the page after a pull or a delete."""
    specs = list(runtime.registry.specs.values())
    checks = page_checks(specs, runtime.settings.check_servers)
    updates = []
    for component in components:
        if isinstance(component, gr.CheckboxGroup):
            updates.append(gr.CheckboxGroup(choices=ready_choices(specs, checks)))
        elif isinstance(component, gr.Dropdown):
            updates.append(gr.Dropdown(choices=picker_choices(specs, checks)))
        else:
            updates.append(get_more(specs, checks))
    return updates


def build_tab(runtime: Runtime, pickers: list[gr.Dropdown], others: list | None = None) -> None:
    """The tab's content; call inside `with gr.Tab(...)`. `pickers` (the outputs of
    /pull_model) and `others` (more pickers and their "get more" folds) are refreshed
    after a pull or a delete."""
    pulls = _Pulls()
    table = gr.Dataframe(
        value=lambda: rows(runtime, pulls), headers=COLUMNS, interactive=False, elem_id="models-table",
        wrap=True, column_widths=COLUMN_WIDTHS,  # a long status wraps: every column stays in view
    )  # fmt: skip
    with gr.Row():
        name = gr.Dropdown(
            _pullable(runtime), label="Model", elem_id="models-name", allow_custom_value=False, scale=2
        )
        repo = gr.Textbox(
            label="or any GGUF repo on Hugging Face",
            placeholder="unsloth/Llama-4-Scout-17B-16E-Instruct-GGUF:UD-Q2_K_XL",
            elem_id="models-repo",
            scale=2,
        )
    with gr.Row() as manage:
        pull = gr.Button("Pull", variant="primary", elem_id="models-pull")
        cancel = gr.Button("Cancel", variant="stop", elem_id="models-cancel")
        delete = gr.Button("Delete", elem_id="models-delete", interactive=False)
        confirm = gr.Checkbox(False, label="yes, delete its files", elem_id="models-confirm")
    refresh = gr.Button("Refresh", elem_id="models-refresh")
    status = gr.Markdown("", elem_id="models-status")
    # Everyone sees the catalogue; only an admin gets the buttons that change it.
    gr.on(None, _role_view(runtime), None, [manage, status], api_visibility="private")
    outputs = [status, table, name, *pickers]
    pulled = pull.click(
        _puller(runtime, pulls, len(pickers)),
        [name, repo],
        outputs,
        api_name="pull_model",
        concurrency_id=PULL_QUEUE,
        concurrency_limit=1,
    )
    cancel.click(_canceller(runtime, pulls), None, status, queue=False, api_name="cancel_pull")
    refresh.click(lambda: rows(runtime, pulls), None, table, api_name="models_table")
    name.change(_delete_offer(runtime), name, delete, api_visibility="private")
    deleted = delete.click(
        _deleter(runtime, pulls, len(pickers)), [name, confirm], [*outputs, confirm], api_name="delete_model"
    )
    for event in (pulled, deleted) if others else ():
        event.then(lambda: picker_updates(runtime, others), None, others, api_visibility="private")


def rows(runtime: Runtime, pulls: _Pulls | None = None) -> list[list[str]]:
    from models.engines import expert_plan_line
    from models.fit import fit
    from models.memory import free_ram_bytes, free_vram_bytes, memory_budget

    budget, vram = memory_budget(runtime.settings, use_gpu=True), free_vram_bytes()
    ram = free_ram_bytes()
    specs = list(runtime.registry.specs.values())
    checks = page_checks(specs, runtime.settings.check_servers)
    fits = {s.name: fit(s, runtime.settings, budget=budget, vram=vram) for s in specs}
    recommended = _recommended(specs, fits)
    table = []
    for spec in specs:
        result = fits[spec.name]
        size = spec.file_bytes()
        table.append(
            [
                spec.name + (" ★ recommended here" if spec.name == recommended else ""),
                _status(spec, pulls, checks.get(spec.name)),
                *_sizes(spec, size, result.needs_bytes),
                _fits(result, spec),
                "yes" if spec.vision else "no",
                expert_plan_line(spec, runtime.settings, vram, ram) or "-",
            ]
        )
    for name, fraction in (pulls.progress if pulls else {}).items():
        if name not in fits:  # a --hf pull: listed once it is on disk
            table.append([name, f"downloading {fraction:.0%}", "-", "-", "-", "-", "-"])
    return table


def _sizes(spec: ModelSpec, size: int | None, needs: int | None) -> tuple[str, str]:
    """The size and memory cells: a remote model has neither here."""
    if spec.is_remote:
        return ON_SERVER, ON_SERVER
    return (f"{size / 1e9:.1f} GB" if size else "-", f"{needs / 1e9:.1f} GB" if needs else "-")


def _status(spec: ModelSpec, pulls: _Pulls | None, check=None) -> str:
    if pulls is not None and spec.name in pulls.progress:
        return f"downloading {pulls.progress[spec.name]:.0%}"
    if check is not None:  # a remote model: what its server said (models/availability.py)
        return f"ready at {spec.endpoint}" if check.ready else check.why
    if spec.is_remote:
        return f"on an endpoint ({spec.endpoint})" if spec.available else "endpoint not set"
    return "on disk" if spec.available else "missing"


def _fits(result, spec: ModelSpec) -> str:
    if result.fits is None:
        return "?"
    if result.fits:
        return "yes"
    return f"with -c {result.max_ctx_that_fits:,}" if result.max_ctx_that_fits else "no"


def _recommended(specs: list[ModelSpec], fits: dict) -> str | None:
    """The biggest Llama 4 GGUF that fits at its context: the best quant for here."""
    candidates = [s for s in specs if s.is_llama and s.hf_repo and fits[s.name].fits]
    return max(candidates, key=lambda s: s.file_bytes() or 0).name if candidates else None


def _pullable(runtime: Runtime) -> list[str]:
    return [s.name for s in runtime.registry.specs.values() if s.hf_repo or s.backend == "llama.cpp"]


def _refreshed(runtime: Runtime, pulls: _Pulls, status: str, pickers: int):
    from hub.local import add_pulled

    # Presets and pulls only: the ad-hoc models and endpoints stay as the server started.
    local = runtime.settings.model_copy(
        update={"endpoint": None, "model_path": None, "hf_path": None, "extra_models": []}
    )
    fresh = add_pulled(load_registry(local), local.resolved_models_dir)
    for spec in fresh.specs.values():
        current = runtime.registry.specs.get(spec.name)
        if current is None or not current.is_remote:  # endpoints keep what the server said
            runtime.registry.add(spec if current is None else _keep_context(spec, current))
    specs = list(runtime.registry.specs.values())
    choices = picker_choices(specs, page_checks(specs, runtime.settings.check_servers))  # `others` follow
    return (
        status,
        rows(runtime, pulls),
        gr.Dropdown(choices=_pullable(runtime)),
        *(gr.Dropdown(choices=choices) for _ in range(pickers)),
    )


def _keep_context(fresh: ModelSpec, current: ModelSpec) -> ModelSpec:

    return fresh.at_context(current.n_ctx)  # the server's --ctx override stays


def _role_view(runtime: Runtime):
    def view(request: gr.Request):
        admin = may_manage_models(runtime.settings, user_of(request))
        notice = "" if admin else "The catalogue is read-only for you: an admin pulls and deletes models."
        return gr.Row(visible=admin), notice

    return view


def _puller(runtime: Runtime, pulls: _Pulls, pickers: int):
    def pull(name: str, repo: str, request: gr.Request, progress=gr.Progress()):
        from hub.cli import machine_budget
        from hub.download import PullCancelled
        from hub.pull import parse_hf_ref, plan_hf, plan_preset, run

        if not may_manage_models(runtime.settings, user_of(request)):
            return _refreshed(runtime, pulls, f"⚠️ {ADMIN_ONLY}", pickers)
        models_dir = runtime.settings.resolved_models_dir
        try:
            check_field(repo or "", runtime.settings.max_field_chars, "the repo")
        except UserError as exc:
            return _refreshed(runtime, pulls, f"⚠️ {exc}", pickers)
        label = (repo or "").strip() or name
        if not label:
            return _refreshed(runtime, pulls, "Choose a model or type a Hugging Face repo.", pickers)
        pulls.cancel = threading.Event()
        try:
            if repo and repo.strip():
                hf_repo, quant = parse_hf_ref(repo)
                plan = plan_hf(hf_repo, quant, models_dir, machine_budget(runtime.settings))
            else:
                plan = plan_preset(runtime.spec(name))
            if not plan.missing:
                return _refreshed(runtime, pulls, f"{label} is already on disk.", pickers)
            label = f"{plan.repo}:{plan.quant}" if plan.manifest_dir else name  # its row's name
            pulls.progress[label] = 0.0

            def report(fraction: float, line: str) -> None:
                pulls.progress[label] = fraction
                progress(fraction, desc=line)

            run(plan, models_dir, report, pulls.cancel)
        except PullCancelled:
            message = f"Cancelled {label}; Pull again resumes where it stopped."
            return _refreshed(runtime, pulls, message, pickers)
        except UserError as exc:
            return _refreshed(runtime, pulls, f"⚠️ {exc}", pickers)
        finally:
            pulls.progress.pop(label, None)
        return _refreshed(runtime, pulls, f"✅ {label}: verified (sha256) and on disk.", pickers)

    return pull


def _canceller(runtime: Runtime, pulls: _Pulls):
    def cancel(request: gr.Request) -> str:
        if not may_manage_models(runtime.settings, user_of(request)):
            return f"⚠️ {ADMIN_ONLY}"
        if not pulls.progress:
            return "Nothing is downloading."
        pulls.cancel.set()
        return "Cancelling…"

    return cancel


def _delete_offer(runtime: Runtime):
    """Delete is offered only for a model whose files were pulled here."""

    def offer(name: str):
        from hub.local import deletable

        spec = runtime.registry.specs.get(name or "")
        return gr.Button(
            interactive=spec is not None and deletable(spec, runtime.settings.resolved_models_dir)
        )

    return offer


def _deleter(runtime: Runtime, pulls: _Pulls, pickers: int):
    def delete(name: str, confirmed: bool, request: gr.Request):
        from hub.local import delete_model

        if not may_manage_models(runtime.settings, user_of(request)):
            return *_refreshed(runtime, pulls, f"⚠️ {ADMIN_ONLY}", pickers), False
        if not name:
            return *_refreshed(runtime, pulls, "Choose a model to delete.", pickers), False
        if not confirmed:
            message = f"Tick “yes, delete its files” to delete {name}."
            return *_refreshed(runtime, pulls, message, pickers), False
        try:
            spec = runtime.spec(name)  # a stale page may name a model deleted since
            runtime.models.release(name)
            deleted = delete_model(spec, runtime.registry, runtime.settings.resolved_models_dir)
        except UserError as exc:
            return *_refreshed(runtime, pulls, f"⚠️ {exc}", pickers), False
        if name.count("/") == 1 and ":" in name:  # a --hf pull: gone from the list with its files
            runtime.registry.specs.pop(name, None)
        message = f"Deleted {name} ({len(deleted)} file(s))."
        return *_refreshed(runtime, pulls, message, pickers), False

    return delete
