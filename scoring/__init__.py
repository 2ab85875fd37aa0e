"""Lead scoring (XGBoost), model registry, explanations and matching. Lands with issue #4."""
