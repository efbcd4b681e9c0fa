"""emsh ISAC2 plugin: iterative stable alignment and clustering of 2-D particle images.

This module is only the operation specification (cheap to import); the algorithm is in
``params``, ``align``, ``stability``, ``eqkmeans``, ``generation``, ``prepare`` and
``run``, and the operation's implementation in ``ops``.
"""

from emsh.spec import Field, Operation, Plugin, Prompt

__version__ = "0.1.0"

_OPS = f"{__name__}.ops"

# name, type, default, min, max, help -- names and defaults of sp_isac2.py
_OPTIONS = (
    ("img_per_grp", "int", 200, 2, None, "images per class in EQ-K-means (K = n // img_per_grp)"),
    ("minimum_grp_size", "int", 60, 0, None, "accept a class with more stable members than this"),
    ("thld_err", "float", 0.7, 0.0, None, "stability threshold: pixel error (shrunk px)"),
    ("stab_ali", "int", 5, 2, None, "independent alignments per stability test"),
    ("target_radius", "int", 29, 2, None, "particle radius after shrinking; outer ring (px)"),
    ("target_nx", "int", 76, 8, None, "working box size (px)"),
    ("ir", "int", 1, 1, None, "inner ring (px)"),
    ("rs", "int", 1, 1, None, "ring step (px)"),
    ("xr", "int", 1, 0, None, "x search half-range (shrunk px)"),
    ("yr", "int", -1, -1, None, "y search half-range (-1: as xr)"),
    ("ts", "float", 1.0, 0.0, None, "translational search step (px)"),
    ("maxit", "int", 30, 2, None, "iterations of within-group alignment"),
    ("dst", "float", 90.0, 0.0, 360.0, "discrete angular step (degrees)"),
    ("FL", "float", 0.2, 0.0, 0.5, "tanh low-pass start cut-off (cycles/px)"),
    ("FH", "float", 0.45, 0.0, 0.5, "tanh low-pass final cut-off (cycles/px)"),
    ("FF", "float", 0.2, 0.0, None, "tanh low-pass fall-off"),
    ("init_iter", "int", 7, 1, None, "maximum within-group (stability) stages per generation"),
    ("iter_reali", "int", 1, 1, None, "stability test every iter_reali stages"),
    ("delta_good", "int", 0, 0, None, "stop if generation 1 yields no more classes than this"),
    ("max_generations", "int", 20, 1, None, "cap on generations (SPHIRE has none)"),
    ("rand_seed", "int", -1, None, None, "random seed (-1: the session's generator)"),
    ("apix", "float", 0.0, 0.0, None, "input pixel size in A, recorded in the averages"),
    ("overwrite", "yesno", False, None, None, "replace the outputs of an earlier run"),
)

ISAC2 = Operation(
    code="ISAC2",
    aliases=("CL ISAC",),
    title="ISAC2: iterative stable alignment and clustering of 2-D particle images",
    impl=f"{_OPS}:isac2_op",
    prompts=(
        Prompt("stack_file", "INPUT STACK", kind="image",
               help="square particle images (stk@ or a stack file)"),
        Prompt("output_directory", "OUTPUT FOLDER", kind="text",
               help="class_averages.hdf, all_parameters.txt, ... are written here"),
        Prompt("radius", "PARTICLE RADIUS (PIXELS)", fields=(
            Field("radius", "float", min=1.0,
                  help="in original pixels; s = target_radius/radius"),)),
    ),
    outputs=("n_classes", "n_accounted"),
    options=tuple(Field(n, t, d, min=lo, max=hi, help=h) for n, t, d, lo, hi, h in _OPTIONS),
    help=("SPHIRE's ISAC2 (sp_isac2.py). Images are shrunk so the particle radius becomes "
          "target_radius in a target_nx box and normalised. Each generation splits the "
          "unaccounted images into K = n // img_per_grp equal groups by EQ-K-means "
          "(multi-reference polar alignment, equal-size assignment, averaging with a tanh "
          "low-pass from FL to FH); every (FH-FL)/0.05+1 iterations each group is aligned "
          "stab_ali times without reference, and members whose positions agree within "
          "thld_err pixels are stable. Groups with more than minimum_grp_size stable "
          "members become classes. Outputs: class_averages.hdf (headers members, "
          "n_objects), class_averages.mrcs, all_parameters.txt, processed_images.txt, "
          "not_processed_images.txt, isac_particles.star. Not implemented: "
          "pre-alignment (as --skip_prealignment), CTF/VPP, restart, ordering."),
)

PLUGIN = Plugin(
    name="isac2",
    version=__version__,
    summary="ISAC2 2-D classification (iterative stable alignment and clustering)",
    operations=[ISAC2],
)
