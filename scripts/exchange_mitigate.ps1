# salve-script: exchange_mitigate
# Apply or remove the Exchange On-premises Mitigation Tool's (EOMT) URL Rewrite mitigation for
# CVE-2021-26855 on the Default Web Site (contract: MitigateRequest -> MitigateAnswer).
#
# Apply: installs the IIS URL Rewrite module first when it is missing and a source was given
# (pulled by this host from a UNC path or an HTTP(S) URL, SHA-256 checked when given, Authenticode
# signature checked), then writes the two EOMT rules, replacing same-named rules.
# Remove: deletes the two rules; when no rewrite rule remains, clears the rules section (as EOMT's
# -RollbackMitigation does). The URL Rewrite module itself is left installed.

$rebootRequired = $false
$site = 'IIS:\Sites\Default Web Site'
$rulesFilter = 'system.webServer/rewrite/rules'
$rules = [ordered]@{
    'X-AnonResource-Backend Abort - inbound' = @{ pattern = '(.*)X-AnonResource-Backend(.*)'; stop = $false }
    'X-BEResource Abort - inbound'           = @{ pattern = '(.*)X-BEResource=(.+)/(.+)~(.+)'; stop = $true }
}

function Write-SalveAnswer([bool] $Changed, [bool] $Success, $Reason) {
    $answer = [ordered]@{
        changed               = $Changed
        success               = $Success
        reason                = $Reason
        url_rewrite_installed = [bool] (Get-SalveRewriteVersion)
        reboot_required       = [bool] $script:rebootRequired
        rules_present         = @(Get-SalveRulesPresent)
    }
    Write-Output ('##salve-result## ' + (ConvertTo-Json -InputObject $answer -Depth 8 -Compress))
}

function Get-SalveRewriteVersion {
    $item = Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Microsoft\IIS Extensions\URL Rewrite' -Name 'Version' -ErrorAction SilentlyContinue
    if ($item) { return [string] $item.Version }
    return $null
}

# Writes each EOMT rule name present, one by one; callers collect them with @( ).
function Get-SalveRulesPresent {
    if (-not (Get-SalveRewriteVersion)) { return }
    $names = @(Get-WebConfigurationProperty -PSPath $site -Filter "$rulesFilter/rule" -Name 'name' -ErrorAction SilentlyContinue |
            ForEach-Object { [string] $_.Value })
    $rules.Keys | Where-Object { $names -contains $_ }
}

# Windows Installer runs one installation at a time: msiexec exits at once with 1618
# (ERROR_INSTALL_ALREADY_RUNNING) while another holds it (Windows Update, an agent's MSI, an
# Exchange update). Wait for it, every 30 seconds, for at most $installerWaitSeconds.
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

# Fetch a package onto this host (UNC copy or HTTP(S) download) and check its SHA-256.
# Progress goes to the host (Write-Host): the function's output is the local path.
function Get-SalvePayload([string] $Source, [string] $Sha256, [string] $FileName) {
    $dir = Join-Path $env:TEMP 'salve'
    New-Item -ItemType Directory -Path $dir -Force | Out-Null
    $target = Join-Path $dir $FileName
    if ($Source -match '^https?://') {
        [Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12
        Write-Host "Downloading $Source"
        Invoke-WebRequest -Uri $Source -OutFile $target -UseBasicParsing
    } elseif ($Source -match '^\\\\') {
        Write-Host "Copying $Source"
        Copy-Item -LiteralPath $Source -Destination $target -Force
    } else {
        throw "source '$Source' is neither an http(s):// URL nor a \\server\share UNC path"
    }
    if ($Sha256) {
        $actual = (Get-FileHash -LiteralPath $target -Algorithm SHA256).Hash.ToLowerInvariant()
        if ($actual -ne $Sha256.ToLowerInvariant()) {
            Remove-Item -LiteralPath $target -Force
            throw "SHA-256 of $Source is $actual, expected $($Sha256.ToLowerInvariant()); the file was deleted"
        }
    }
    return $target
}

$identity = [Security.Principal.WindowsPrincipal] [Security.Principal.WindowsIdentity]::GetCurrent()
if (-not $identity.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    [Console]::Error.WriteLine('the session is not elevated; connect with an account in the local Administrators group')
    exit 1
}
if (-not (Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Microsoft\ExchangeServer\v15\Setup' -Name 'MsiInstallPath' -ErrorAction SilentlyContinue)) {
    Write-SalveAnswer $false $false 'no Exchange 2013, 2016 or 2019 installation found (MsiInstallPath missing)'
    exit 1
}

$changed = $false
try {
    Import-Module WebAdministration -ErrorAction Stop
    if ($SalveArgs.action -eq 'apply') {
        if (-not (Get-SalveRewriteVersion)) {
            if (-not $SalveArgs.rewrite_msi_source) {
                Write-SalveAnswer $false $false 'the IIS URL Rewrite module is not installed and no rewrite_msi_source was given'
                exit 1
            }
            $msi = Get-SalvePayload $SalveArgs.rewrite_msi_source $SalveArgs.rewrite_msi_sha256 'rewrite.msi'
            $signature = Get-AuthenticodeSignature -FilePath $msi
            if ($signature.Status -ne 'Valid') {
                throw "the URL Rewrite package is not validly signed ($($signature.Status))"
            }
            $log = Join-Path (Split-Path $msi) 'RewriteModuleInstall.log'
            Write-Output "Installing IIS URL Rewrite module from $($SalveArgs.rewrite_msi_source)"
            $p = Invoke-SalveMsiexec @('/i', "`"$msi`"", '/qn', '/norestart', '/l*v', "`"$log`"")
            # 3010 (ERROR_SUCCESS_REBOOT_REQUIRED) and 1641 (ERROR_SUCCESS_REBOOT_INITIATED)
            # are successful installs that need a restart.
            switch ($p.ExitCode) {
                0 { }
                3010 { $script:rebootRequired = $true }
                1641 { $script:rebootRequired = $true }
                1618 { throw "another installation is still in progress after waiting $($installerWaitSeconds / 60) minutes (msiexec 1618, ERROR_INSTALL_ALREADY_RUNNING); nothing was installed" }
                default { throw "msiexec exited with $($p.ExitCode) installing URL Rewrite; see $log" }
            }
            if (-not (Get-SalveRewriteVersion)) { throw "URL Rewrite is still not registered after the install; see $log" }
            $changed = $true
        }
        $present = @(Get-SalveRulesPresent)
        foreach ($name in $rules.Keys) {
            if ($present -contains $name) { continue }
            $rule = $rules[$name]
            $filter = "$rulesFilter/rule[@name='$name']"
            Write-Output "Adding rewrite rule '$name' to $site"
            Clear-WebConfiguration -PSPath $site -Filter $filter -ErrorAction SilentlyContinue
            Add-WebConfigurationProperty -PSPath $site -Filter $rulesFilter -Name '.' -Value @{
                name           = $name
                patternSyntax  = 'Regular Expressions'
                stopProcessing = $rule.stop
            }
            Set-WebConfigurationProperty -PSPath $site -Filter "$filter/match" -Name 'url' -Value '.*'
            Add-WebConfigurationProperty -PSPath $site -Filter "$filter/conditions" -Name '.' -Value @{
                input      = '{HTTP_COOKIE}'
                matchType  = 'Pattern'
                pattern    = $rule.pattern
                ignoreCase = $true
                negate     = $false
            }
            Set-WebConfigurationProperty -PSPath $site -Filter "$filter/action" -Name 'type' -Value 'AbortRequest'
            $changed = $true
        }
    } elseif ($SalveArgs.action -eq 'remove') {
        if (Get-SalveRewriteVersion) {
            foreach ($name in @(Get-SalveRulesPresent)) {
                Write-Output "Removing rewrite rule '$name' from $site"
                Clear-WebConfiguration -PSPath $site -Filter "$rulesFilter/rule[@name='$name']"
                $changed = $true
            }
            $left = @(Get-WebConfigurationProperty -PSPath $site -Filter "$rulesFilter/rule" -Name 'name' -ErrorAction SilentlyContinue)
            if ($changed -and $left.Count -eq 0) {
                Clear-WebConfiguration -PSPath $site -Filter $rulesFilter
            }
        }
    } else {
        throw "action must be 'apply' or 'remove', got '$($SalveArgs.action)'"
    }
} catch {
    Write-SalveAnswer $changed $false $_.Exception.Message
    exit 1
}
Write-SalveAnswer $changed $true $null
