# salve-script: exchange_update
# Install one Exchange update, or the .NET Framework one needs (contract: UpdateRequest -> UpdateAnswer).
#
# SU (kind 'su'): a CU-specific .msp. Refused before msiexec runs when the host's CU is not the
# one the SU is for (the target build's major.minor.build must equal the installed build's).
# Installed with `msiexec.exe /update <msp> /qn /norestart /l*v <log>`; success is read from the
# exit code (0, 3010, 1641) and the verbose log.
# CU (kind 'cu'): the CU's ISO image, mounted, and its Setup.exe run by absolute path with
# /Mode:Upgrade and the licence switch given (a bare `setup.exe` would resolve to ...\V15\bin).
# Success is read from ExchangeSetup.log after the last "Starting Microsoft Exchange Server" line:
# its success line, not the absence of [ERROR] lines; a failure names its Failed [Rule:...] lines.
# AD preparation (kind 'prepare_ad'): the CU's image mounted as for the CU, then
# `Setup.exe /PrepareSchema` and `Setup.exe /PrepareAD` with the licence switch, each judged by
# its exit code and the last Setup run in ExchangeSetup.log. Needs an account in Schema Admins
# and Enterprise Admins (the task's `become` account); no restart follows.
# .NET (kind 'dotnet'): the offline installer of the .NET Framework version the next CU on the
# path needs, run with /q /norestart (Microsoft's .NET Framework deployment guide: 0 is installed,
# 3010 and 1641 installed with a restart to follow, 5100 the system requirements are not met).
# Exchange's procedure stops the Exchange services first (Get-Service *exch* | Stop-Service, twice,
# without -Force); they start again with the restart. A host whose Release value already reaches
# dotnet_release installs nothing.
#
# The package is pulled by this host from a UNC path or an HTTP(S) URL into C:\salve\updates
# and its SHA-256 checked with Get-FileHash before use; it is deleted after a successful install
# unless keep_packages is set. Setup and SUs disable Exchange services while they run; if any
# are left Disabled, ServiceControl.ps1 AfterPatch restores them. The server is not restarted:
# the controller does that (reboot_required says when).

$exitCode = -1
$logExcerpt = @()
$rebootRequired = $false
$success = $false
$already = $false
$reason = $null
$package = $null

function Write-SalveAnswer {
    $answer = [ordered]@{
        exit_code         = [int] $exitCode
        log_excerpt       = @($logExcerpt)
        reboot_required   = [bool] $rebootRequired
        success           = [bool] $success
        already_installed = [bool] $already
        reason            = $reason
    }
    Write-Output ('##salve-result## ' + (ConvertTo-Json -InputObject $answer -Depth 8 -Compress))
}

function Get-SalveInstalledBuild([string] $InstallPath) {
    $exSetup = Join-Path $InstallPath 'bin\ExSetup.exe'
    if (-not (Test-Path -LiteralPath $exSetup)) { return $null }
    $v = (Get-Item -LiteralPath $exSetup).VersionInfo
    return [version] ('{0}.{1}.{2}.{3}' -f $v.FileMajorPart, $v.FileMinorPart, $v.FileBuildPart, $v.FilePrivatePart)
}

# A secret job_control left for this step beside this script (share.cred, download.token),
# DPAPI-sealed for this machine: read once and deleted at once; $null when there is none.
function Read-SalveSecret([string] $Name) {
    $path = Join-Path $PSScriptRoot $Name
    if (-not (Test-Path -LiteralPath $path)) { return $null }
    $sealed = [Convert]::FromBase64String([IO.File]::ReadAllText($path))
    Remove-Item -LiteralPath $path -Force
    Add-Type -AssemblyName System.Security
    $plain = [Security.Cryptography.ProtectedData]::Unprotect($sealed, $null, [Security.Cryptography.DataProtectionScope]::LocalMachine)
    try { return [Text.Encoding]::UTF8.GetString($plain) } finally { [Array]::Clear($plain, 0, $plain.Length) }
}

# A package source's own share account (its username and password, in share.cred): used to
# connect to the share with New-PSDrive -Credential, so the copy authenticates as that account
# whichever account this task runs as. Returns the path to read the package from: through that
# drive, or the source itself when no account was given.
function Connect-SalveShare([string] $Source) {
    $text = Read-SalveSecret 'share.cred'
    if ($null -eq $text) { return $Source }
    $stored = $text | ConvertFrom-Json
    $secure = New-Object System.Security.SecureString
    foreach ($ch in ([string] $stored.password).ToCharArray()) { $secure.AppendChar($ch) }
    $credential = New-Object System.Management.Automation.PSCredential ([string] $stored.user, $secure)
    $share = [string] $stored.share
    if (-not $Source.StartsWith($share + '\', [StringComparison]::OrdinalIgnoreCase)) {
        throw "the share account given is for $share, and the package is at $Source"
    }
    Write-Host "Connecting to $share as $($stored.user)"
    $null = New-PSDrive -Name 'SalvePackages' -PSProvider FileSystem -Root $share -Credential $credential -ErrorAction Stop
    return ('SalvePackages:' + $Source.Substring($share.Length))
}

# A package salve serves itself (server_pin set): its TLS certificate must have exactly that
# SHA-256 (a self-signed certificate is fine; no other is accepted, whatever the machine's
# trust says), and the request carries the step's bearer token (download.token).
$salveServedToken = $null
function Enable-SalveServedDownload {
    if (-not $SalveArgs.server_pin) { return }
    if (-not ('SalvePinnedCertificate' -as [type])) {
        Add-Type -TypeDefinition @'
using System;
using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
public static class SalvePinnedCertificate {
    public static string Sha256;
    public static bool Check(object sender, X509Certificate certificate, X509Chain chain, SslPolicyErrors errors) {
        if (certificate == null) { return false; }
        using (SHA256 sha = SHA256.Create()) {
            string hex = BitConverter.ToString(sha.ComputeHash(certificate.GetRawCertData())).Replace("-", "");
            return String.Equals(hex, Sha256, StringComparison.OrdinalIgnoreCase);
        }
    }
    public static void Install(string sha256) {
        Sha256 = sha256;
        ServicePointManager.ServerCertificateValidationCallback = Check;
    }
}
'@
    }
    [SalvePinnedCertificate]::Install([string] $SalveArgs.server_pin)
    $script:salveServedToken = Read-SalveSecret 'download.token'
    if (-not $script:salveServedToken) { throw 'the package is served by salve, and no download token was left for this step' }
}

# Fetch a package onto this host (UNC copy or HTTP(S) download) and check its SHA-256.
# Progress goes to the host (Write-Host): the function's output is the local path.
function Get-SalvePayload([string] $Source, [string] $Sha256, [string] $FileName) {
    $dir = Join-Path $env:SystemDrive 'salve\updates'
    New-Item -ItemType Directory -Path $dir -Force | Out-Null
    $target = Join-Path $dir $FileName
    $readFrom = $Source
    if ($Source -match '^\\\\') { $readFrom = Connect-SalveShare $Source }
    Enable-SalveServedDownload
    Assert-SalveRoomFor $Source $target $readFrom
    if ($Source -match '^https?://') {
        [Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12
        Write-Host "Downloading $Source"
        $web = Get-SalveWebArgs
        Invoke-WebRequest -Uri $Source -OutFile $target -UseBasicParsing @web
    } elseif ($Source -match '^\\\\') {
        Write-Host "Copying $Source"
        Copy-Item -LiteralPath $readFrom -Destination $target -Force
    } else {
        throw "source '$Source' is neither an http(s):// URL nor a \\server\share UNC path"
    }
    $actual = (Get-FileHash -LiteralPath $target -Algorithm SHA256).Hash.ToLowerInvariant()
    if ($actual -ne $Sha256.ToLowerInvariant()) {
        Remove-Item -LiteralPath $target -Force
        throw "SHA-256 of $Source is $actual, expected $($Sha256.ToLowerInvariant()); the file was deleted and nothing was installed"
    }
    Write-Host "SHA-256 verified: $actual"
    return $target
}

# Free-space preflight: a 6 GB ISO copied onto a nearly full system drive fails half-way with
# "There is not enough space on the disk." and leaves the drive full, where Exchange transport
# applies back pressure and stops taking mail. The package's size (Content-Length of a HEAD
# request, or the share file's length) plus a reserve must fit before anything is written.
$salveReserveBytes = 4294967296

# The proxy a URL source names: Invoke-WebRequest's -Proxy, authenticating as the account the
# step runs as (-ProxyUseDefaultCredentials). Without it, .NET's default (the account's system
# proxy settings, or none).
function Get-SalveWebArgs {
    $web = @{}
    if ($salveServedToken) { $web.Headers = @{ Authorization = ('Bearer ' + $salveServedToken) } }
    if ($SalveArgs.proxy) {
        $web.Proxy = [string] $SalveArgs.proxy
        $web.ProxyUseDefaultCredentials = $true
    }
    return $web
}
function Assert-SalveRoomFor([string] $Source, [string] $Target, [string] $ReadFrom) {
    $size = $null
    if ($Source -match '^https?://') {
        try {
            $web = Get-SalveWebArgs
            $head = Invoke-WebRequest -Uri $Source -Method Head -UseBasicParsing @web
            $size = [int64] ([string] $head.Headers['Content-Length'])
        } catch {
            Write-Host "The size of $Source is not known before the download ($($_.Exception.Message)); free space is checked as it goes"
        }
    } elseif ($Source -match '^\\\\') {
        $size = (Get-Item -LiteralPath $ReadFrom).Length
    }
    if (-not $size) { return }
    $letter = Split-Path -Qualifier $Target
    $free = [int64] (Get-CimInstance -ClassName Win32_LogicalDisk -Filter ("DeviceID='{0}'" -f $letter)).FreeSpace
    if ($free - $size -lt $salveReserveBytes) {
        $needGb = [math]::Round($size / 1073741824, 1).ToString('0.0', [Globalization.CultureInfo]::InvariantCulture)
        $freeGb = [math]::Round($free / 1073741824, 1).ToString('0.0', [Globalization.CultureInfo]::InvariantCulture)
        throw "$Source needs $needGb GB on $letter, which has $freeGb GB free; 4 GB must stay free after it (Exchange transport stops taking mail on a full drive). Free space on $letter, then run again; nothing was copied"
    }
}

# Decided by the values, not by their presence: an empty PendingFileRenameOperations list, or
# UpdateExeVolatile Flags of 0, is left behind and means nothing is pending.
function Test-SalvePendingReboot {
    $renames = @((Get-ItemProperty -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager' -Name 'PendingFileRenameOperations' -ErrorAction SilentlyContinue).PendingFileRenameOperations |
            Where-Object { $_ })
    $flags = (Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Updates\UpdateExeVolatile' -Name 'Flags' -ErrorAction SilentlyContinue).Flags
    return ($renames.Count -gt 0) -or
        (Test-Path -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending') -or
        (Test-Path -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired') -or
        ($null -ne $flags -and [int] $flags -ne 0)
}

# Setup and SUs stop and disable Exchange services and re-enable them at the end; a failed or
# aborted run leaves them Disabled. ServiceControl.ps1 AfterPatch puts them back; the others
# below are set back to their Windows default start type.
# Services an Exchange CU or SU stops and disables besides those named "Microsoft Exchange*",
# and leaves Disabled when it fails: IIS, WMI, Remote Registry, Performance Logs & Alerts,
# Application Identity, filtering management, search tracing.
$salveServices = @('W3SVC', 'IISADMIN', 'WAS', 'Winmgmt', 'RemoteRegistry', 'pla', 'AppIDSvc', 'FMS', 'SearchExchangeTracing')
$salveManualServices = @('pla', 'AppIDSvc')
function Restore-SalveServices([string] $InstallPath) {
    $disabled = @(Get-Service -ErrorAction SilentlyContinue | Where-Object {
            ($_.DisplayName -like 'Microsoft Exchange*' -or $_.Name -in $salveServices) -and [string] $_.StartType -eq 'Disabled'
        })
    if ($disabled.Count -eq 0) { return }
    Write-Host ("Services left Disabled: {0}; running ServiceControl.ps1 AfterPatch" -f (($disabled | ForEach-Object Name) -join ', '))
    $serviceControl = Join-Path $InstallPath 'Bin\ServiceControl.ps1'
    if (Test-Path -LiteralPath $serviceControl) {
        Add-PSSnapin Microsoft.Exchange.Management.PowerShell.Setup -ErrorAction SilentlyContinue
        Push-Location (Join-Path $InstallPath 'Bin')
        # Microsoft's script, with its own error preference rather than the prelude's 'Stop'.
        try { & { $ErrorActionPreference = 'Continue'; & $serviceControl AfterPatch } } finally { Pop-Location }
    }
    foreach ($name in $salveServices) {
        $svc = Get-Service -Name $name -ErrorAction SilentlyContinue
        if ($svc -and [string] $svc.StartType -eq 'Disabled') {
            if ($name -in $salveManualServices) {
                Set-Service -Name $name -StartupType Manual
            } else {
                Set-Service -Name $name -StartupType Automatic
                Start-Service -Name $name
            }
        }
    }
}

# Windows Installer runs one installation at a time: msiexec exits at once with 1618
# (ERROR_INSTALL_ALREADY_RUNNING) while another holds it (Windows Update, an agent's MSI, an
# earlier run). Wait for it, every 30 seconds, for at most $installerWaitSeconds.
$installerWaitSeconds = 900
function Invoke-SalveMsiexec([string[]] $Arguments) {
    $deadline = (Get-Date).AddSeconds($installerWaitSeconds)
    while ($true) {
        $p = Start-Process -FilePath 'msiexec.exe' -ArgumentList $Arguments -Wait -PassThru
        if ($p.ExitCode -ne 1618 -or (Get-Date) -ge $deadline) { return $p }
        Write-Host 'Another installation is in progress (msiexec 1618, ERROR_INSTALL_ALREADY_RUNNING); retrying in 30 seconds'
        Start-Sleep -Seconds 30
    }
}

function Invoke-SalveSu([string] $InstallPath, [version] $Current, [version] $Target) {
    if ($Current.Major -ne $Target.Major -or $Current.Minor -ne $Target.Minor -or $Current.Build -ne $Target.Build) {
        $script:exitCode = 1642
        $script:reason = "$($SalveArgs.kb) is for build $Target's CU, but this server runs $Current; msiexec was not run (an SU only installs on its own CU)"
        return
    }
    if ($Current -ge $Target) {
        $script:exitCode = 0
        $script:success = $true
        $script:already = $true
        $script:logExcerpt = @("$($SalveArgs.kb) is already installed (build $Current).")
        return
    }
    $msp = Get-SalvePayload $SalveArgs.source $SalveArgs.sha256 ("{0}.msp" -f $SalveArgs.kb)
    $script:package = $msp
    $log = Join-Path (Split-Path $msp) ("{0}-{1:yyyyMMddHHmmss}.log" -f $SalveArgs.kb, (Get-Date))
    Write-Output "msiexec.exe /update $msp /qn /norestart /l*v $log"
    $p = Invoke-SalveMsiexec @('/update', "`"$msp`"", '/qn', '/norestart', '/l*v', "`"$log`"")
    $script:exitCode = $p.ExitCode
    if (Test-Path -LiteralPath $log) {
        # The verbose log is UTF-16; keep the lines that say what happened.
        $script:logExcerpt = @(Get-Content -LiteralPath $log -Encoding Unicode |
                Where-Object { $_ -match 'Product: |Windows Installer requires a restart|error code|Error \d{4}|upgrade patch cannot be installed|Interim Update' } |
                Select-Object -Last 20)
    }
    switch ($p.ExitCode) {
        0 { $script:success = $true }
        3010 { $script:success = $true }
        1641 { $script:success = $true }
        1642 { $script:reason = 'The upgrade patch cannot be installed by the Windows Installer service: the SU does not match the installed CU' }
        1603 { $script:reason = 'fatal error during installation (1603); check that the session is elevated and the OWA/ECP folders are accessible, then re-run' }
        1618 { $script:reason = "another installation is still in progress after waiting $($installerWaitSeconds / 60) minutes (msiexec 1618, ERROR_INSTALL_ALREADY_RUNNING); nothing was installed" }
        1619 { $script:reason = "the package could not be opened (1619): $msp" }
        default { $script:reason = "msiexec exited with $($p.ExitCode); see $log" }
    }
    # Exchange SUs replace binaries in use: restart before the next step or the verify.
    $script:rebootRequired = $script:success
}

function Invoke-SalvePrepareAd {
    if (-not $SalveArgs.license_switch) {
        $script:exitCode = 1
        $script:reason = 'license_switch is required for /PrepareSchema and /PrepareAD'
        return
    }
    $iso = Get-SalvePayload $SalveArgs.source $SalveArgs.sha256 ("{0}.iso" -f $SalveArgs.kb)
    $script:package = $iso
    $image = Mount-DiskImage -ImagePath $iso -PassThru
    try {
        $letter = ($image | Get-Volume).DriveLetter
        if (-not $letter) { throw "$iso was mounted but got no drive letter; nothing was prepared" }
        $setup = "{0}:\Setup.exe" -f $letter
        $setupLog = Join-Path $env:SystemDrive 'ExchangeSetupLogs\ExchangeSetup.log'
        foreach ($mode in '/PrepareSchema', '/PrepareAD') {
            Write-Output "$setup $mode $($SalveArgs.license_switch)"
            $p = Start-Process -FilePath $setup -ArgumentList @($mode, $SalveArgs.license_switch) -Wait -PassThru -NoNewWindow
            $script:exitCode = $p.ExitCode
            $lines = @(Get-Content -LiteralPath $setupLog -ErrorAction SilentlyContinue)
            $start = -1
            for ($i = $lines.Count - 1; $i -ge 0; $i--) {
                if ($lines[$i] -match 'Starting Microsoft Exchange Server .* Setup') { $start = $i; break }
            }
            $run = if ($start -ge 0) { $lines[$start..($lines.Count - 1)] } else { $lines }
            $script:logExcerpt = @($run | Where-Object { $_ -match '\[ERROR\]|setup operation' } | Select-Object -Last 20)
            $ok = @($run | Where-Object { $_ -match 'The Exchange Server setup operation completed successfully' }).Count -gt 0
            if ($p.ExitCode -ne 0 -or -not $ok) {
                $script:reason = "Setup $mode did not complete (exit code $($p.ExitCode)); see $setupLog"
                return
            }
        }
        $script:success = $true
    } finally {
        Dismount-DiskImage -ImagePath $iso | Out-Null
    }
}

function Invoke-SalveDotNet {
    $release = [int] (Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Microsoft\NET Framework Setup\NDP\v4\Full' -Name 'Release' -ErrorAction SilentlyContinue).Release
    if ($release -ge [int] $SalveArgs.dotnet_release) {
        $script:exitCode = 0
        $script:success = $true
        $script:already = $true
        $script:logExcerpt = @(".NET Framework Release $release is installed; $($SalveArgs.kb) needs $($SalveArgs.dotnet_release): nothing to do")
        return
    }
    $exe = Get-SalvePayload $SalveArgs.source $SalveArgs.sha256 ("{0}.exe" -f $SalveArgs.kb)
    $script:package = $exe
    foreach ($pass in 1, 2) {
        Get-Service -Name '*exch*' -ErrorAction SilentlyContinue | Where-Object { [string] $_.Status -eq 'Running' } |
            Stop-Service -ErrorAction SilentlyContinue
    }
    $log = Join-Path (Split-Path $exe) ("{0}-{1:yyyyMMddHHmmss}.log" -f $SalveArgs.kb, (Get-Date))
    Write-Output "$exe /q /norestart /log $log"
    $p = Start-Process -FilePath $exe -ArgumentList @('/q', '/norestart', '/log', "`"$log`"") -Wait -PassThru
    $script:exitCode = $p.ExitCode
    switch ($p.ExitCode) {
        0 { $script:success = $true }
        3010 { $script:success = $true }
        1641 { $script:success = $true }
        1618 { $script:reason = 'another installation is in progress (1618); nothing was installed' }
        5100 { $script:reason = "this server does not meet the system requirements of $($SalveArgs.kb) (5100)" }
        default { $script:reason = "the .NET Framework installer exited with $($p.ExitCode); see $log" }
    }
    $script:logExcerpt = @("$($SalveArgs.kb): the .NET Framework installer exited with $($p.ExitCode)")
    # A new .NET is in use only after a restart; the next CU's Setup checks for one pending.
    $script:rebootRequired = $script:success
}

function Invoke-SalveCu([string] $InstallPath, [version] $Current, [version] $Target) {
    if ($Current -and $Current -ge $Target) {
        $script:exitCode = 0
        $script:success = $true
        $script:already = $true
        $script:logExcerpt = @("Build $Current is already at or above $Target.")
        return
    }
    if (Test-SalvePendingReboot) {
        $script:exitCode = 1
        $script:reason = 'a restart is pending; restart the server before running Setup (prerequisite rule RebootPending)'
        return
    }
    if (-not $SalveArgs.license_switch) {
        $script:exitCode = 1
        $script:reason = 'license_switch is required for a CU (/IAcceptExchangeServerLicenseTerms, or _DiagnosticDataON/_DiagnosticDataOFF from the September 2021 CUs)'
        return
    }
    if ($SalveArgs.source -notmatch '\.iso$') {
        $script:exitCode = 1
        $script:reason = "a CU source must be the CU's .iso image (so its SHA-256 can be checked); got '$($SalveArgs.source)'"
        return
    }
    # An ISO still attached from an earlier run (cut off before its finally) holds the file
    # open: detach it before the file is replaced.
    $isoPath = Join-Path (Join-Path $env:SystemDrive 'salve\updates') ("{0}.iso" -f $SalveArgs.kb)
    $stale = Get-DiskImage -ImagePath $isoPath -ErrorAction SilentlyContinue
    if ($stale -and $stale.Attached) {
        Write-Output "Dismounting $isoPath, left mounted by an earlier run"
        Dismount-DiskImage -ImagePath $isoPath | Out-Null
    }
    $iso = Get-SalvePayload $SalveArgs.source $SalveArgs.sha256 ("{0}.iso" -f $SalveArgs.kb)
    $script:package = $iso
    $image = Mount-DiskImage -ImagePath $iso -PassThru
    try {
        $letter = ($image | Get-Volume).DriveLetter
        if (-not $letter) {
            throw "$iso was mounted but got no drive letter (automount is off on this server: run 'mountvol /E', or assign a letter); nothing was installed"
        }
        $setup = "{0}:\Setup.exe" -f $letter
        if (-not (Test-Path -LiteralPath $setup)) { throw "no Setup.exe at the root of $iso" }
        $setupLog = Join-Path $env:SystemDrive 'ExchangeSetupLogs\ExchangeSetup.log'
        Write-Output "$setup /Mode:Upgrade $($SalveArgs.license_switch)"
        $p = Start-Process -FilePath $setup -ArgumentList @('/Mode:Upgrade', $SalveArgs.license_switch) -Wait -PassThru -NoNewWindow
        $script:exitCode = $p.ExitCode
        if (-not (Test-Path -LiteralPath $setupLog)) {
            $script:reason = "Setup exited with $($p.ExitCode) and wrote no $setupLog"
            return
        }
        $lines = @(Get-Content -LiteralPath $setupLog)
        $start = -1
        for ($i = $lines.Count - 1; $i -ge 0; $i--) {
            if ($lines[$i] -match 'Starting Microsoft Exchange Server .* Setup') { $start = $i; break }
        }
        $run = if ($start -ge 0) { $lines[$start..($lines.Count - 1)] } else { $lines }
        $script:logExcerpt = @($run | Where-Object {
                $_ -match '\[ERROR\]|Setup version:|locally installed version|setup operation|Failed \[Rule:|\[Rule:.*\[Value:"True"\]'
            } | Select-Object -Last 20)
        # Judged as CSS-Exchange's SetupLogReviewer does: the last run only; it succeeded when it
        # ends in the success line, whatever [ERROR] lines Setup logged and recovered from; when
        # it did not, the reason names its `Failed [Rule:...] [Message:...]` lines.
        $ok = @($run | Where-Object { $_ -match 'The Exchange Server setup operation completed successfully' }).Count -gt 0
        $incomplete = @($run | Where-Object { $_ -match "The Exchange Server setup operation didn't complete" }).Count -gt 0
        $setupVersion = ($run | Select-String -Pattern 'Setup version: ([0-9.]+)\.' | Select-Object -First 1)
        if ($ok -and -not $incomplete) {
            $script:success = $true
            $script:rebootRequired = $true
        } elseif ($setupVersion -and $Current -and ([version] $setupVersion.Matches[0].Groups[1].Value) -eq $Current) {
            $script:reason = "Setup's version equals the installed build $Current: the wrong Setup.exe ran"
        } else {
            $rules = @($run | Select-String -Pattern 'Failed \[Rule:(\w+)\] \[Message:(.*)\]' | ForEach-Object {
                    'prerequisite {0} failed: {1}' -f $_.Matches[0].Groups[1].Value, $_.Matches[0].Groups[2].Value
                })
            $script:reason = if ($rules.Count -gt 0) {
                '{0}; see {1}' -f ($rules -join '; '), $setupLog
            } else {
                "Setup did not complete (exit code $($p.ExitCode)); see $setupLog"
            }
        }
    } finally {
        Dismount-DiskImage -ImagePath $iso | Out-Null
    }
}

$identity = [Security.Principal.WindowsPrincipal] [Security.Principal.WindowsIdentity]::GetCurrent()
if (-not $identity.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    [Console]::Error.WriteLine('the session is not elevated; SUs installed without elevation break OWA/ECP. Connect with an account in the local Administrators group')
    exit 1
}
$installPath = (Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Microsoft\ExchangeServer\v15\Setup' -Name 'MsiInstallPath' -ErrorAction SilentlyContinue).MsiInstallPath
if (-not $installPath) {
    $reason = 'no Exchange 2013, 2016 or 2019 installation found (MsiInstallPath missing)'
    Write-SalveAnswer
    exit 1
}
if ($SalveArgs.sha256 -notmatch '^[0-9a-fA-F]{64}$') {
    $reason = 'sha256 must be 64 hexadecimal digits; nothing was installed'
    Write-SalveAnswer
    exit 1
}

try {
    $target = [version] $SalveArgs.target_build
    $current = Get-SalveInstalledBuild $installPath
    switch ($SalveArgs.kind) {
        'su' {
            if (-not $current) { throw 'ExSetup.exe was not found: Exchange setup did not complete the last time it ran; repair with Setup /Mode:Upgrade first' }
            Invoke-SalveSu $installPath $current $target
        }
        'cu' { Invoke-SalveCu $installPath $current $target }
        'dotnet' { Invoke-SalveDotNet }
        'prepare_ad' { Invoke-SalvePrepareAd }
        default { throw "kind must be 'cu', 'su', 'dotnet' or 'prepare_ad', got '$($SalveArgs.kind)'" }
    }
} catch {
    $reason = $_.Exception.Message
    $success = $false
} finally {
    try { Restore-SalveServices $installPath } catch { Write-Output "Restoring services failed: $($_.Exception.Message)" }
}
# A package that installed is deleted (a CU's ISO is about 6 GB, on the drive that usually holds
# the transport queue) unless keep_packages asks to keep it; a failed one stays for a re-run.
if ($success -and $package -and -not $SalveArgs.keep_packages -and (Test-Path -LiteralPath $package)) {
    try {
        Remove-Item -LiteralPath $package -Force -ErrorAction Stop
        Write-Output "Removed $package"
    } catch {
        Write-Output "Could not remove $package`: $($_.Exception.Message)"
    }
}
if ($reason) { [Console]::Error.WriteLine($reason) }
Write-SalveAnswer
if (-not $success) { exit 1 }
