"""`launch.py models`: every preset and model of your own, on disk or not, size,
memory for the chosen context, context window, vision; for a served or hosted model
its limits and whether its key is set."""

from __future__ import annotations

import json

from cli.flags import MODEL_FLAGS, add_flags


def add_parser(commands) -> None:
    models = commands.add_parser("models", help="list models: on disk or not, size, memory, vision")
    add_flags(models, MODEL_FLAGS)
    models.add_argument("--json", action="store_true", help="one JSON object per model")


def run(settings, args) -> int:
    from hub.local import add_pulled
    from models.catalogue import load_registry
    from models.engines import expert_plan_line
    from models.fit import fit
    from models.memory import free_ram_bytes, free_vram_bytes, memory_budget

    registry = add_pulled(load_registry(settings), settings.resolved_models_dir)
    from models.availability import NOT_CHECKED, check_all

    budget, vram = memory_budget(settings, use_gpu=True), free_vram_bytes()  # measured once for every row
    ram = free_ram_bytes()
    checks = check_all(list(registry.specs.values())) if settings.check_servers else {}
    rows = [
        {
            **_model_row(spec, settings.n_ctx),
            **fit(spec, settings, settings.n_ctx, budget=budget, vram=vram).as_dict(),
            "placement": expert_plan_line(spec, settings, vram, ram),
            **(checks[spec.name].as_dict() if spec.name in checks else NOT_CHECKED),
        }
        for spec in registry.specs.values()
    ]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print(f"{'NAME':<22} {'ON DISK':<8} {'SIZE':>9} {'MEMORY':>9} {'CTX':>8} {'FITS':<4} {'VISION':<6} LABEL")
    for row in rows:
        remote = row["backend"] == "openai"
        size = f"{row['size_gb']:.1f} GB" if row["size_gb"] is not None else "?" if not remote else "-"
        memory = f"{row['memory_gb']:.1f} GB" if row["memory_gb"] is not None else "?"
        where = _where(row)
        fits = {True: "yes", False: "no", None: "?"}[row["fits"]]
        print(
            f"{row['name']:<22} {where:<8} {size:>9} {memory:>9} "
            f"{row['n_ctx']:>8} {fits:<4} {'yes' if row['vision'] else 'no':<6} {row['label']}"
        )
        if row["fits"] is False:
            print(f"{'':<22} {_too_big(row)}")
        if row["placement"]:
            print(f"{'':<22} placement: {row['placement']}")
        if remote and row["endpoint"]:
            print(f"{'':<22} served at {row['endpoint']} as {row['remote_model']}")
        if remote:
            print(f"{'':<22} limits: {row['limits']}")
            print(f"{'':<22} now: {row['why'] or 'ready'}")
        for what in row["missing"] if not remote else ():
            print(f"{'':<22} {'needs' if remote else 'expected at'} {what}")
        if row["missing"] and row["hf_repo"]:
            print(f"{'':<22} get it with: launch.py pull {row['name']}")
    from doctor.llama4_layout import check_llama4_layout

    print(f"\n{check_llama4_layout().message}")
    return 0


def _where(row: dict) -> str:
    if row["backend"] != "openai":
        return "yes" if row["available"] else "missing"
    return "ready" if row["availability"] == "ready" else "not now"


def _too_big(row: dict) -> str:
    free = f"{row['budget_gb']:.1f} GB free"
    if row["max_ctx_that_fits"]:
        return f"needs {row['needs_gb']:.1f} GB, {free}: fits with -c {row['max_ctx_that_fits']}"
    return f"needs {row['needs_gb']:.1f} GB, {free}: the weights alone do not fit"


def _model_row(spec, n_ctx: int | None) -> dict:
    from models.hosted import key_set, limits_line

    size = spec.file_bytes()
    memory = spec.estimated_memory(n_ctx)
    return {
        "name": spec.name,
        "label": spec.label,
        "backend": spec.backend,
        "available": spec.available,
        "missing": spec.missing(),
        "endpoint": spec.endpoint,
        "remote_model": spec.remote_model,
        "provider": spec.provider,
        "api_key_env": spec.api_key_env,  # the variable's name; its value is never shown
        "key_set": key_set(spec),
        "max_images": spec.max_images,
        "max_image_bytes": spec.max_image_bytes,
        "max_image_pixels": spec.max_image_pixels,
        "max_output_tokens": spec.max_output_tokens,
        "size_gb": round(size / 1e9, 2) if size is not None else None,
        "memory_gb": round(memory / 1e9, 2) if memory is not None else None,
        "n_ctx": n_ctx or spec.n_ctx,
        "max_context": spec.max_context,
        "vision": spec.vision,
        "hf_repo": spec.hf_repo,
        "limits": limits_line(spec) if spec.is_remote else "",
    }
