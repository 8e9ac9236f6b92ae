"""`mia`, the command line of a responder's own machine: an adapter over `shared/`, like the
function folders."""
