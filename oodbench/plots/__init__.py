"""Figures; each module renders from the tidy tables, never from raw logits."""
