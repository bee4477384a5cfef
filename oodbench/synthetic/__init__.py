"""The synthetic factor-of-variation set (paper Section 4.3, Appendix D): sources, grids,
geometry, sharded composition, analysis. Import the submodules you need."""
