"""Stream processors (faust) that turn the log into read models stored in SQL."""
