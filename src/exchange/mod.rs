//! What salve knows about Exchange: build numbers ([`build`]), the CU/SU/CVE catalogue compiled
//! into the binary ([`catalogue`]), and what a given build is missing with the shortest supported
//! path to fixed ([`assess`], [`plan`]).

pub mod assess;
pub mod build;
pub mod catalogue;
pub mod dotnet;
pub mod ids;
pub mod plan;
