"""CareCast: content scheduling for physical-therapy practices (framework-free core; never imports Prefect)."""
