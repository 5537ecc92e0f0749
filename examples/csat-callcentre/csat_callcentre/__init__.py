"""csat-callcentre: an example of a company's own csat rule set, packaged as a plugin."""
