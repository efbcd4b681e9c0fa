"""emsh ISAC2 plugin: iterative stable alignment and clustering of 2-D particle images.

This module is only the operation specification (cheap to import); the algorithm is in
``params``, ``inputs``, ``correct``, ``prealign``, ``prepare``, ``align``, ``stability``,
``eqkmeans``, ``generation``, ``ordering`` and ``run``, the post-run tools in ``tools`` and
``montage``, and the operations' implementations in ``ops``.
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

# preparation, ordering and restart options (sp_isac2's names and defaults)
_PREP_OPTIONS = (
    ("skip_prealignment", "yesno", False, None, None,
     "no reference-free centring of the stack before shrinking"),
    ("CTF", "yesno", False, None, None,
     "phase-flip each image with its CTF (ctf_star or EMAN2 'ctf' headers)"),
    ("VPP", "yesno", False, None, None,
     "whiten by the mean rotational amplitude spectrum (phase plate; not with CTF)"),
    ("ctf_star", "str", "", None, None, "RELION STAR file with one CTF per image (CTF=yes)"),
    ("filament_width", "float", -1.0, None, None,
     "filament mode: horizontal band mask of this width (original px; -1: off)"),
    ("filament_mask_ignore", "yesno", False, None, None,
     "filament mode: normalise with the band but do not apply it"),
    ("skip_ordering", "yesno", False, None, None,
     "keep the averages in acceptance order (no ordering by mutual similarity)"),
    ("restart", "yesno", False, None, None,
     "resume a killed run from output_directory/checkpoints (and 2dalignment)"),
)

_FOLDER = Prompt("folder", "ISAC2 OUTPUT FOLDER", kind="text",
                 help="the output folder of a finished ISAC2 run")
_CLASSES = Prompt("numbers", "CLASS NUMBERS", kind="numbers",
                  help="1-based positions in class_averages.hdf (1-5,8) or a selection doc")
_STACK = Prompt("stack_file", "INPUT STACK (* = THE RUN'S STACK)", kind="image", optional=True,
                help="the stack ISAC2 classified (original images)")

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
    options=tuple(Field(n, t, d, min=lo, max=hi, help=h)
                  for n, t, d, lo, hi, h in _OPTIONS + _PREP_OPTIONS),
    mpi="all",
    help=("SPHIRE's ISAC2 (sp_isac2.py). Each image's mean inside the radius is "
          "subtracted; with CTF=yes it is phase-flipped with its own CTF (ctf_star=file.star "
          "with RELION columns, else the stack's EMAN2 'ctf' headers), with VPP=yes whitened "
          "by the stack's mean rotational amplitude spectrum. Unless skip_prealignment=yes "
          "the shrunk stack is aligned without reference to its own average and each "
          "image is centred by the shift found (2dalignment/initial2Dparams.txt, original "
          "pixels). Images are shrunk so the particle radius becomes "
          "target_radius in a target_nx box and normalised (filament_width: within a "
          "horizontal band, also applied as a mask unless filament_mask_ignore=yes). "
          "Each generation splits the "
          "unaccounted images into K = n // img_per_grp equal groups by EQ-K-means "
          "(multi-reference polar alignment, equal-size assignment, averaging with a tanh "
          "low-pass from FL to FH); every (FH-FL)/0.05+1 iterations each group is aligned "
          "stab_ali times without reference, and members whose positions agree within "
          "thld_err pixels are stable. Groups with more than minimum_grp_size stable "
          "members become classes. The averages are then ordered by mutual similarity "
          "(sp_chains' circular chain; skip_ordering=yes keeps acceptance order). "
          "Outputs (README.txt in the folder describes them): class_averages.hdf (headers "
          "members, n_objects), class_averages.mrcs, class_averages.png (montage with "
          "member counts), all_parameters.txt, 2dalignment/initial2Dparams.txt, "
          "processed_images.txt, not_processed_images.txt, isac_particles.star. An earlier "
          "run's files are never replaced unless overwrite=yes; restart=yes resumes a "
          "killed run from its checkpoints. Under mpiexec the alignment is split over "
          "the ranks and rank 0 writes the files. Tools for the results: ISAC2 SELECT, "
          "ISAC2 FULLSIZE, ISAC2 SUBSTACK, ISAC2 MONTAGE."),
    see_also=("ISAC2 SELECT", "ISAC2 FULLSIZE", "ISAC2 SUBSTACK", "ISAC2 MONTAGE"),
)

SELECT = Operation(
    code="ISAC2 SELECT",
    title="ISAC2: member ids of chosen class averages (combined and per class)",
    impl=f"{_OPS}:select_op",
    prompts=(_FOLDER, _CLASSES,
             Prompt("prefix", "OUTPUT PREFIX", kind="text",
                    help="writes PREFIX.txt (all ids) and PREFIX_class_NNN.txt (per class)")),
    outputs=("n_images", "n_classes"),
    help=("Writes the 0-based input-stack ids of the members of the chosen classes: "
          "PREFIX.txt holds them all (sorted, one per line, SPHIRE's selection format) and "
          "PREFIX_class_NNN.txt those of class NNN. Existing files of those names are "
          "replaced. The registers receive the number of images and of classes."),
    see_also=("ISAC2", "ISAC2 SUBSTACK"),
)

FULLSIZE = Operation(
    code="ISAC2 FULLSIZE",
    title="ISAC2: class averages of the original images at full size",
    impl=f"{_OPS}:fullsize_op",
    prompts=(_FOLDER, _STACK,
             Prompt("output", "OUTPUT STACK", kind="image_out",
                    help="one full-size average per class, headers members, n_objects")),
    outputs=("n_classes",),
    help=("sp_compute_isac_avg.py's parameters: each member of each class is shifted by "
          "its pre-alignment shift, then rotated by alpha and shifted by (sx, sy)/s of "
          "all_parameters.txt and mirrored, in the original box and pixel size, after the "
          "run's own correction (CTF phase flip or VPP whitening); the class average is "
          "their mean, in the order of class_averages.hdf."),
    see_also=("ISAC2", "ISAC2 MONTAGE"),
)

SUBSTACK = Operation(
    code="ISAC2 SUBSTACK",
    title="ISAC2: the member images of chosen classes as a new stack with a STAR file",
    impl=f"{_OPS}:substack_op",
    prompts=(_FOLDER, _STACK, _CLASSES,
             Prompt("output", "OUTPUT STACK", kind="image_out",
                    help="members in id order; also OUTPUT.star and OUTPUT_ids.txt")),
    outputs=("n_images",),
    help=("Copies the original images of the members of the chosen classes (sorted by "
          "id) to a new stack, and writes beside it a STAR file (rlnImageName in the new "
          "stack, rlnClassNumber, emshIsacOriginalId, full-size emshIsacAlpha/ShiftX/"
          "ShiftY/Mirror, and the run's RELION CTF columns) and a list of the 0-based "
          "original ids (sp_pipe isac_substack)."),
    see_also=("ISAC2 SELECT",),
)

MONTAGE = Operation(
    code="ISAC2 MONTAGE",
    title="ISAC2: PNG montage of class averages with their member counts",
    impl=f"{_OPS}:montage_op",
    prompts=(Prompt("averages", "CLASS AVERAGES", kind="image",
                    help="class_averages.hdf or an ISAC2 FULLSIZE stack (file@)"),
             Prompt("png", "OUTPUT PNG", kind="file_out")),
    outputs=("n_classes",),
    options=(Field("columns", "int", 0, min=0, help="panels per row (0: automatic)"),),
    help=("Draws each average with its number and member count (header n_objects, or "
          "the length of members). ISAC2 writes class_averages.png this way itself."),
    see_also=("ISAC2",),
)

PLUGIN = Plugin(
    name="isac2",
    version=__version__,
    summary="ISAC2 2-D classification (iterative stable alignment and clustering)",
    operations=[ISAC2, SELECT, FULLSIZE, SUBSTACK, MONTAGE],
)
