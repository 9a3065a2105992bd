"""Torch-free core: what a trained model needs at deployment, image I/O, eval
preprocessing and the dataset readers. Everything else imports from here; this
package imports from no other package of the project."""
