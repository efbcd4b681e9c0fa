"""emsh: a SPIDER-like interpreter and workbench for cryo-electron microscopy.

Importing the package does no work: no FFT planning, no MPI start-up, no plugin
discovery. Each subpackage is imported when it is used.
"""

__version__ = "0.1.0"
