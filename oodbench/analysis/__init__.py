"""Section 3 analyses of the paper: metric correlation, regression on ImageNet accuracy,
residual PCA, informativeness of metrics and the robustness/transfer relation.

Submodules are imported on use (``from oodbench.analysis import correlation``) so that
importing the package stays cheap.
"""
