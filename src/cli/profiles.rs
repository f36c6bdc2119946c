//! `posemu profiles list | show NAME | new NAME`.

use std::process::ExitCode;

use clap::Subcommand;
use rand::RngCore;

use posemu_profile::{self as profile, FormFactor, Profile};
use posemu_runtime::home::{write_private, Home};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Every profile: yours (in the config directory) and the shipped ones.
    List,
    /// One profile, secrets redacted.
    Show {
        /// A profile name or a path to a .toml file.
        name: String,
    },
    /// A new profile with a random device id and fresh secrets, in your config directory.
    New {
        /// File name (letters, digits, `-`, `_`).
        name: String,
        /// Model, e.g. PAX-A920, Verifone-V400c, SUNMI-P2 (a shipped model copies its OS and form).
        #[arg(long, default_value = "PAX-A920")]
        model: String,
        /// Operating system (default: the shipped model's, else Android 12).
        #[arg(long)]
        os: Option<String>,
        /// App version in the User-Agent.
        #[arg(long, default_value = "1.4.2")]
        app_version: String,
        /// Device id (default: random `POS-` + 8 hex digits).
        #[arg(long)]
        device_id: Option<String>,
    },
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    super::usage(msg)
}

pub async fn run(args: Args) -> ExitCode {
    let home = match Home::discover() {
        Ok(h) => h,
        Err(e) => return fail(e),
    };
    match args.command {
        Cmd::List => list(&home),
        Cmd::Show { name } => match home.find_profile(&name) {
            Ok(p) => {
                print!("{}", show(&p));
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Cmd::New {
            name,
            model,
            os,
            app_version,
            device_id,
        } => {
            match new_profile(&home, &name, &model, os, &app_version, device_id) {
                Ok(path) => {
                    println!("created {}", path.display());
                    println!("use it with: posemu --profile {name}   or   posemu activate --profile {name}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
    }
}

fn list(home: &Home) -> ExitCode {
    println!(
        "{:<18} {:<8} {:<13} {:<16} {:<14} {:<6}",
        "NAME", "ORIGIN", "DEVICE", "MODEL", "OS", "APP"
    );
    let mut broken = false;
    for (p, origin) in home.list_profiles() {
        match p {
            Ok(p) => println!(
                "{:<18} {:<8} {:<13} {:<16} {:<14} {:<6}",
                p.name,
                origin.as_str(),
                p.device_id,
                p.model,
                p.os,
                p.app_version
            ),
            Err(e) => {
                broken = true;
                println!("{:<18} {:<8} BROKEN: {e}", "?", origin.as_str());
            }
        }
    }
    println!("\nyour profiles: {}", home.profiles_dir().display());
    if broken {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The profile as a person reads it; secrets are never printed.
pub fn show(p: &Profile) -> String {
    let source = p
        .source
        .as_ref()
        .map(|s| s.display().to_string())
        .unwrap_or_else(|| format!("shipped with posemu (built in as {:?})", p.name));
    format!(
        "name        {}\nsource      {source}\ndescription {}\ndevice id   {}\nmodel       {}\nos          {}\napp version {}\nform        {:?}\nuser agent  {}\nkey id      {}\nsecret      <redacted: 32 bytes>\nzmk         <redacted: 32 bytes>\nmerchant    {}\n",
        p.name,
        p.description,
        p.device_id,
        p.model,
        p.os,
        p.app_version,
        p.form,
        p.user_agent(),
        p.key_id,
        p.merchant_id.as_deref().unwrap_or("(the server's default)"),
    )
}

fn new_profile(
    home: &Home,
    name: &str,
    model: &str,
    os: Option<String>,
    app_version: &str,
    device_id: Option<String>,
) -> Result<std::path::PathBuf, String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "name {name:?}: use letters, digits, '-' and '_' only"
        ));
    }
    // Each flag is checked on its own first, so an error names the flag, not a line of a
    // file that was never written.
    if let Some(id) = &device_id {
        if !posemu_protocol::headers::is_valid_device_id(id) {
            return Err(format!(
                "--device-id {id:?}: not \"POS-\" and 8 uppercase hex digits, e.g. POS-8F3A2C91 \
                 (nothing was written)"
            ));
        }
    }
    if posemu_protocol::version::Version::parse(app_version).is_none() {
        return Err(format!(
            "--app-version {app_version:?}: not a version like 1.4.2 (nothing was written)"
        ));
    }
    for (flag, value) in [("--model", Some(model)), ("--os", os.as_deref())] {
        if let Some(v) = value {
            if v.trim().is_empty() || v.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
                return Err(format!(
                    "{flag} {v:?}: use visible text without quotes or backslashes (nothing was written)"
                ));
            }
        }
    }
    let path = home.profiles_dir().join(format!("{name}.toml"));
    if path.exists() {
        return Err(format!(
            "{} exists already; pick another name (nothing was changed)",
            path.display()
        ));
    }
    let shipped = profile::builtin()
        .into_iter()
        .find(|p| p.model.eq_ignore_ascii_case(model));
    let os = os
        .or_else(|| shipped.as_ref().map(|p| p.os.clone()))
        .unwrap_or_else(|| "Android 12".into());
    let form = shipped.as_ref().map(|p| p.form).unwrap_or_default();
    let mut rng = rand::rng();
    let id = device_id.unwrap_or_else(|| format!("POS-{:08X}", rng.next_u32()));
    let mut secret = [0u8; 32];
    let mut zmk = [0u8; 32];
    rng.fill_bytes(&mut secret);
    rng.fill_bytes(&mut zmk);
    let form = match form {
        FormFactor::Handheld => "handheld",
        FormFactor::Countertop => "countertop",
        FormFactor::Compact => "compact",
    };
    let text = format!(
        "# posemu device profile, made by `posemu profiles new {name}`.\n\
         # Its secrets are random and yours: a server must be provisioned with them\n\
         # (posemu's embedded sandbox does that for the profile it runs).\n\
         description = \"{model} ({os})\"\n\n\
         [device]\nid = \"{id}\"\nmodel = \"{model}\"\nos = \"{os}\"\napp_version = \"{app_version}\"\nform = \"{form}\"\n\n\
         [identity]\nkey_id = \"device-id-key-2025-01\"\nsecret_hex = \"{}\"\n\n\
         [keys]\nzmk_hex = \"{}\"\n",
        hex::encode_upper(secret),
        hex::encode_upper(zmk),
    );
    // the same strict check a later load makes, before anything is written
    profile::parse(&text, &path.display().to_string(), name).map_err(|e| e.to_string())?;
    write_private(&path, text.as_bytes()).map_err(|e| e.to_string())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_profiles_are_valid_private_and_never_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home::at(tmp.path());
        let path = new_profile(&home, "lab-1", "Verifone-V400c", None, "1.5.0", None).unwrap();
        let p = home.find_profile("lab-1").unwrap();
        assert_eq!(p.model, "Verifone-V400c");
        assert_eq!(p.form, FormFactor::Countertop);
        assert_eq!(p.app_version, "1.5.0");
        let shown = show(&p);
        assert!(!shown.contains(&hex::encode_upper(p.identity_secret)));
        assert!(!shown.contains(&hex::encode_upper(p.zmk)));
        let before = std::fs::read(&path).unwrap();
        let err = new_profile(&home, "lab-1", "PAX-A920", None, "1.4.2", None).unwrap_err();
        assert!(err.contains("exists already"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert!(new_profile(&home, "../x", "PAX-A920", None, "1.4.2", None).is_err());
        let err = new_profile(
            &home,
            "bad",
            "PAX-A920",
            None,
            "1.4.2",
            Some("POS-1".into()),
        )
        .unwrap_err();
        assert!(err.starts_with("--device-id \"POS-1\""), "{err}");
        assert!(!err.contains(".toml"), "{err}");
        let err = new_profile(&home, "bad", "PAX-A920", None, "one", None).unwrap_err();
        assert!(err.starts_with("--app-version"), "{err}");
        let err = new_profile(&home, "bad", "PAX\"A920", None, "1.4.2", None).unwrap_err();
        assert!(err.starts_with("--model"), "{err}");
        let err = new_profile(
            &home,
            "bad",
            "PAX-A920",
            Some("Android\n12".into()),
            "1.4.2",
            None,
        )
        .unwrap_err();
        assert!(err.starts_with("--os"), "{err}");
        assert!(!home.profiles_dir().join("bad.toml").exists());
    }
}
