"""SplatShot (reimplementation): one photo -> static 3DGS head by joint denoising of all target views with 3DGS
feedback at every denoising step."""
