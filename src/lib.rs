//! strangler: a strangler-fig reverse proxy.
//!
//! A request flows one way through the modules: [`route`] normalises its path,
//! finds its route and decides legacy or new; [`proxy`] forwards it, falls back
//! to legacy when new fails, and answers.

pub mod config;
pub mod route;
