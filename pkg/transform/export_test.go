package transform

// Mask is mask, for the tests of package transform_test.
var Mask = mask
