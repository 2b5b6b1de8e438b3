"""porelab floor 3: orchestration. campaign/ (the loop), design/ (inverse design), tracking/ (MLflow), cli/."""
