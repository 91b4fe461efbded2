"""okrstream rollup: live, explainable scores for every node of the portfolio."""
