"""okrstream's web pages: the portfolio scorecard, a key result's history, the sync's exceptions, the readout and the weekly check-in."""
