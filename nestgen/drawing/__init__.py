"""Pictures out of arrays: sample grids with class labels, PNG and GIF files, and the fonts that draw the labels."""
