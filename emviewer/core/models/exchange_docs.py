"""Texts of an exported bioimage.io package: the citations of the training data and the README.

The training data of a card are paths below ``../shared/data/<set>/``; each known set has its
citation here (sources as ``shared/data/README.md`` names them).
"""

from __future__ import annotations

#: Citations of the labelled EM sets the bundled models were trained on, by folder name.
DATA_CITATIONS: dict[str, list[dict]] = {
    "cdeep3m_mito": [
        {
            "text": "Haberl M. G. et al. (2018) CDeep3M - Plug-and-Play cloud-based deep learning for image "
            "segmentation. Nature Methods 15, 677-680 (SBEM mitochondria training and validation images).",
            "doi": "10.1038/s41592-018-0106-z",
        }
    ],
    "lucchi_pp_train": [
        {
            "text": "Lucchi A. et al. (2013) EPFL electron microscopy data set, mouse hippocampus CA1 FIB-SEM "
            "(the Lucchi++ training volume).",
            "url": "https://www.epfl.ch/labs/cvlab/data/data-em/",
        },
        {
            "text": "Casser V., Kang K., Pfister H., Haehn D. (2018) Fast Mitochondria Detection for Connectomics "
            "(Lucchi++ relabelling).",
            "url": "https://arxiv.org/abs/1812.06024",
        },
    ],
    "isbi2012_membrane": [
        {
            "text": "Cardona A. et al. (2010) An integrated micro- and macroarchitectural analysis of the "
            "Drosophila brain by computer-assisted serial section electron microscopy. PLoS Biology 8, "
            "e1000502 (the ISBI 2012 segmentation challenge volume).",
            "doi": "10.1371/journal.pbio.1000502",
        }
    ],
    "hela_nuclei_patches": [
        {
            "text": "Karabag C. et al. (2020) Semantic segmentation of HeLa cells: an objective comparison "
            "between one traditional algorithm and four deep-learning architectures. PLoS ONE 15, e0230605.",
            "doi": "10.1371/journal.pone.0230605",
        }
    ],
}

#: Used when a card names no known training set.
FALLBACK_CITATION = {
    "text": "EMViewer: segmentation of organelles in electron-microscopy stacks (training data as in the README).",
    "url": "https://bioimage.io/",
}


def data_sets(card: dict) -> list[str]:
    """Names of the known training sets a card's ``training_data`` mentions, in order."""
    paths = " ".join(str(p) for p in ((card.get("training_data") or {}).get("images") or []))
    return [name for name in DATA_CITATIONS if name in paths]


def citations_for(card: dict) -> list[dict]:
    """``cite`` entries of the rdf: the training data sets of the card."""
    entries = [entry for name in data_sets(card) for entry in DATA_CITATIONS[name]]
    return entries or [FALLBACK_CITATION]


def _figure_rows(card: dict) -> list[str]:
    rows = []
    for label, key in (("validation (1 variant)", "validation"), ("validation (16x TTA)", "validation_tta16")):
        figures = card.get(key) or {}
        if figures:
            values = " | ".join(f"{figures.get(k, float('nan')):.3f}" for k in ("f1", "iou", "precision", "recall"))
            rows.append(f"| {label} | {values} | {figures.get('threshold', card.get('threshold'))} |")
    return rows


def _weights_lines(card: dict, drift: dict) -> list[str]:
    if card.get("installed_precision", card.get("precision")) != card.get("precision"):
        keras = (
            f"- `keras_v3`: the EMViewer model's weights computing in float32; the installed model computes in "
            f"{card['installed_precision']} and its probabilities differ from these by up to "
            f"{drift['max_abs_diff']:.2g} on the test input ({100 * drift['mask_changes']:.2f} % of the mask pixels "
            "change side of the threshold). The validation figures were measured with the installed model."
        )
    else:
        keras = f"- `keras_v3`: the EMViewer model file as installed (SHA-256 {card.get('sha256')})."
    onnx = (
        "- `onnx`: the same weights converted with tf2onnx; largest difference from the Keras output on the "
        f"test input: {drift['onnx_max_abs_diff']:.2g} in probability."
    )
    return [keras, onnx]


def _zoom_lines(card: dict) -> list[str]:
    """A model taken at another zoom (core/zoom.py) needs its input resized first: say by how much."""
    zoom = card.get("input_zoom", 1.0)
    if zoom == 1.0:
        return []
    return [
        "",
        f"**Resize first:** this model takes its slices at zoom {zoom:g} (EMViewer resizes each tile by "
        f"{zoom:g} before the network and the probabilities back); elsewhere, resize the image by {zoom:g} "
        "in Y and X before prediction and the output back to the image's size.",
    ]


def readme_text(card: dict, drift: dict) -> str:
    """The package's README.md (markdown): what the model does, its figures, how to feed it."""
    reference = card.get("input_reference") or (0.098, 0.878)
    training = "; ".join(str(p) for p in ((card.get("training_data") or {}).get("images") or [])) or "not recorded"
    validation = "; ".join(str(p) for p in ((card.get("validation_data") or {}).get("images") or [])) or "not recorded"
    context = int(card.get("context", 1))
    lines = [
        f"# {card.get('name')}",
        "",
        f"An EMViewer model ({card.get('architecture')}, width {card.get('width')}, depth {card.get('depth')}) "
        f"that segments **{card.get('object')}** in electron-microscopy slices. It sees {context} neighbouring "
        f"slice(s) as channels and gives a probability per pixel; a pixel is {card.get('object')} when the "
        f"probability is at least **{card.get('threshold')}** (the card's threshold).",
        "",
        "## Validation figures",
        "",
        "| measured on held-out slices | F1 | IoU | precision | recall | threshold |",
        "|---|---|---|---|---|---|",
        *_figure_rows(card),
        "",
        f"Training images: {training}. Validation images: {validation}.",
        "",
        "## Input and normalisation",
        "",
        "Input `image`: axes batch, y, x, channel (the slices z-k..z+k), y and x multiples of 16. EMViewer maps "
        "the 1st and 99th percentiles of the stack's *tissue* (NaN, constant borders and saturated runs left out, "
        f"over a sample of slices of the whole stack) onto {reference[0]} and {reference[1]} and clips to [0, 1]. "
        "The rdf's preprocessing (`scale_range` 1-99 over slices and space, `scale_linear`, `clip`) does the "
        "same per sample; on plain tissue both agree. For a stack with borders or padding, normalise the whole "
        "stack as EMViewer does rather than tile by tile.",
        "",
        "## Weights",
        "",
        *_weights_lines(card, drift),
        "",
        "EMViewer predicts large slices in overlapping tiles with a blending window, can average 16 test-time "
        "variants (accurate mode: threshold `thresholds['16']` in the card) and removes objects longer than the "
        "card's `max_object_length_px`; a bioimage.io runner does none of this.",
        *_zoom_lines(card),
        "",
        "## Use in EMViewer",
        "",
        "`emviewer import-model PACKAGE.zip` registers it; then `emviewer predict STACK -o OUT --object "
        f"{card.get('object')} --model {card.get('name')}`.",
        "",
        "The training data have their own terms of use (see the citations in rdf.yaml).",
        "",
    ]
    return "\n".join(lines)
