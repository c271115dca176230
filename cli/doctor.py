"""`launch.py doctor`: does the llama.cpp in use lay Llama 4 images out as Meta's
processor does (found by tokenizing a two-tile image), is llama-server here and does
it start (on a tiny model), and the tile grids our image plan gives common sizes on
each kind of backend. Exit 0 when the layout is right and llama-server starts (every
local GGUF model runs in one)."""

from __future__ import annotations

SIZES = {
    "4032x3024 photo": (4032, 3024),
    "1920x1080 screenshot": (1920, 1080),
    "1008x1304 PDF page": (1008, 1304),
    "200x150 icon": (200, 150),
}


def add_parser(commands) -> None:
    commands.add_parser(
        "doctor",
        help="check that llama.cpp lays Llama 4 images out as Meta does and llama-server starts; "
        "show the image plan",
    )


def run(settings, args) -> int:
    from doctor.llama4_layout import check_llama4_layout
    from doctor.llama_server import check_llama_server
    from engine.image_plan import LLAMA_CPP, META, plan_image

    report = check_llama4_layout()
    print(report.message)
    server = check_llama_server()
    print(server.message)
    print("\nimage plan (rows x cols of 336 px tiles, prompt tokens):")
    for what, size in SIZES.items():
        plans = ", ".join(
            f"{name} {plan.rows}x{plan.cols} ({plan.tokens:,})"
            for name, plan in (
                ("llama.cpp", plan_image(*size, LLAMA_CPP)),
                ("vLLM/transformers", plan_image(*size, META)),
            )
        )
        print(f"  {what:<22} {plans}")
    return 0 if report.correct and server.ok else 1
