mod config;
mod config_patterns;
